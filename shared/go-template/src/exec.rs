//! The executor: walks parsed trees with Go's text/template evaluation rules
//! (`golang/go:src/text/template/exec.go`).

use std::sync::Arc;

use crate::error::{Error, FuncError};
use crate::funcs;
use crate::gofmt;
use crate::parse::{self, Arg, Branch, Command, List, Node, Pipe, Tree, TreeMap};
use crate::value::Value;
use crate::{Func, MissingKey, Options, Param, TemplateSet};

/// The execution context handed to template functions.
///
/// Through it a function can execute another template of the same set (Helm's `include`) or a
/// string parsed on the fly that sees the set's defines (Helm's `tpl`). Depth and output limits
/// apply across these nested executions.
pub struct Context<'a> {
    set: &'a TemplateSet,
    options: Options,
    overlays: Vec<Arc<TreeMap>>,
    depth: usize,
    steps: u64,
    current_template: Arc<str>,
    current_file: Arc<str>,
}

/// Nesting levels executed on one native stack before hopping to a new thread.
const STACK_HOP: usize = 16;

/// Stack reserved for each hop thread (virtual memory; pages are committed as used).
const HOP_STACK_BYTES: usize = 64 << 20;

/// Control flow out of a list.
enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'t> {
    tree: &'t Tree,
    vars: Vec<(&'t str, Value)>,
}

type ExecResult<T> = Result<T, Error>;

pub(crate) fn execute(set: &TemplateSet, name: &str, data: &Value) -> Result<String, Error> {
    let mut ctx = Context {
        set,
        options: set.options.clone(),
        overlays: Vec::new(),
        depth: 0,
        steps: 0,
        current_template: Arc::from(name),
        current_file: Arc::from(name),
    };
    let Some(tree) = set.trees.get(name).cloned() else {
        return Err(Error::Message(format!(
            "template: no template {name:?} associated with template {name:?}"
        )));
    };
    let mut out = String::new();
    ctx.run_tree(&tree, data, &mut out)?;
    Ok(out)
}

impl<'a> Context<'a> {
    /// The name of the template being executed (a file name or a `define` name).
    pub fn template_name(&self) -> &str {
        &self.current_template
    }

    /// The file (parse name) the executing template came from.
    pub fn file_name(&self) -> &str {
        &self.current_file
    }

    /// The options in effect.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The number of nested template executions currently active.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Whether a template `name` is visible from here (set or `tpl` defines).
    pub fn has_template(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }

    /// Executes template `name` with `data`, returning its output (Helm's `include`).
    ///
    /// # Errors
    /// The template's execution error, `template: no template "NAME" associated with template
    /// "CURRENT"` if it does not exist, or a depth-limit error.
    pub fn execute_template(&mut self, name: &str, data: &Value) -> Result<String, Error> {
        let Some(tree) = self.lookup(name) else {
            return Err(Error::Message(format!(
                "template: no template {name:?} associated with template {:?}",
                self.current_template
            )));
        };
        let mut out = String::new();
        self.nested(|ctx| ctx.run_tree(&tree, data, &mut out))?;
        Ok(out)
    }

    /// Parses `text` as a template named `name` and executes it with `data` (Helm's `tpl`).
    ///
    /// Defines in `text` are visible to templates it calls, and shadow the set's for the
    /// duration of this call only.
    ///
    /// # Errors
    /// A parse error or the execution error.
    pub fn execute_text(&mut self, name: &str, text: &str, data: &Value) -> Result<String, Error> {
        let parsed = self.set.parse_text(name, text)?;
        let (body, overlay) = (parsed.body.clone(), parsed.overlay.clone());
        self.overlays.push(overlay);
        let mut out = String::new();
        let result = self.nested(|ctx| ctx.run_tree(&body, data, &mut out));
        self.overlays.pop();
        result?;
        Ok(out)
    }

    fn nested<T: Send>(
        &mut self,
        f: impl FnOnce(&mut Self) -> ExecResult<T> + Send,
    ) -> ExecResult<T> {
        if self.depth >= self.options.max_depth {
            return Err(Error::Message(format!(
                "exceeded maximum template depth ({})",
                self.options.max_depth
            )));
        }
        self.depth += 1;
        let saved = (self.current_template.clone(), self.current_file.clone());
        // Deep nesting continues on a fresh thread with a large stack every STACK_HOP levels,
        // so recursion up to `max_depth` never overflows the caller's (possibly small) stack.
        let result = if self.depth.is_multiple_of(STACK_HOP) {
            std::thread::scope(|scope| {
                let spawned = std::thread::Builder::new()
                    .name("go-template-deep".to_string())
                    .stack_size(HOP_STACK_BYTES)
                    .spawn_scoped(scope, || f(self));
                match spawned {
                    Ok(handle) => handle.join().unwrap_or_else(|_| {
                        Err(Error::Message("template execution panicked".to_string()))
                    }),
                    Err(err) => Err(Error::Message(format!(
                        "cannot continue deeply nested template execution: {err}"
                    ))),
                }
            })
        } else {
            f(self)
        };
        self.depth -= 1;
        (self.current_template, self.current_file) = saved;
        result
    }

    fn lookup(&self, name: &str) -> Option<Arc<Tree>> {
        for overlay in self.overlays.iter().rev() {
            if let Some(tree) = overlay.get(name) {
                return Some(tree.clone());
            }
        }
        self.set.trees.get(name).cloned()
    }

    fn run_tree(&mut self, tree: &Tree, data: &Value, out: &mut String) -> ExecResult<()> {
        self.current_template = tree.name.clone();
        self.current_file = tree.parse_name.clone();
        let mut state = State { tree, vars: vec![("$", data.clone())] };
        self.walk_list(&mut state, data, &tree.root, out)?;
        Ok(())
    }

    fn step(&mut self, st: &State<'_>, pos: usize, node: &dyn std::fmt::Display) -> ExecResult<()> {
        self.steps += 1;
        if self.steps > self.options.max_steps {
            return Err(self.error_at(
                st,
                pos,
                node,
                "execution exceeded the step limit".to_string(),
            ));
        }
        Ok(())
    }

    fn error_at(
        &self,
        st: &State<'_>,
        pos: usize,
        node: &dyn std::fmt::Display,
        message: String,
    ) -> Error {
        Error::Exec {
            location: st.tree.location(pos),
            template: st.tree.name.to_string(),
            node: node.to_string(),
            message,
            source: None,
        }
    }

    fn walk_list<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        list: &'t List,
        out: &mut String,
    ) -> ExecResult<Flow> {
        for node in list {
            match self.walk(st, dot, node, out)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn check_output(
        &self,
        st: &State<'_>,
        pos: usize,
        out: &str,
        node: &dyn std::fmt::Display,
    ) -> ExecResult<()> {
        if out.len() > self.options.max_output {
            return Err(self.error_at(
                st,
                pos,
                node,
                format!("output exceeds the limit of {} bytes", self.options.max_output),
            ));
        }
        Ok(())
    }

    fn walk<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        node: &'t Node,
        out: &mut String,
    ) -> ExecResult<Flow> {
        match node {
            Node::Text(text) => {
                out.push_str(text);
            }
            Node::Action(pipe) => {
                let value = self.eval_pipeline(st, dot, pipe)?;
                if pipe.decl.is_empty() {
                    print_value(out, &value);
                    self.check_output(st, pipe.pos, out, pipe)?;
                }
            }
            Node::If(branch) => return self.walk_if_with(st, dot, branch, false, out),
            Node::With(branch) => return self.walk_if_with(st, dot, branch, true, out),
            Node::Range(branch) => return self.walk_range(st, dot, branch, out),
            Node::Template { pos, name, pipe } => {
                let display = TemplateDisplay { name, pipe: pipe.as_ref() };
                let Some(tree) = self.lookup(name) else {
                    return Err(self.error_at(
                        st,
                        *pos,
                        &display,
                        format!("template {name:?} not defined"),
                    ));
                };
                self.step(st, *pos, &display)?;
                if self.depth >= self.options.max_depth {
                    return Err(self.error_at(
                        st,
                        *pos,
                        &display,
                        format!("exceeded maximum template depth ({})", self.options.max_depth),
                    ));
                }
                let new_dot = match pipe {
                    Some(pipe) => self.eval_pipeline(st, dot, pipe)?,
                    None => Value::Missing,
                };
                self.nested(|ctx| ctx.run_tree(&tree, &new_dot, out))?;
                self.check_output(st, *pos, out, &display)?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_with<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        branch: &'t Branch,
        is_with: bool,
        out: &mut String,
    ) -> ExecResult<Flow> {
        let mark = st.vars.len();
        let value = self.eval_pipeline(st, dot, &branch.pipe)?;
        let flow = if value.is_true() {
            if is_with {
                self.walk_list(st, &value, &branch.list, out)?
            } else {
                self.walk_list(st, dot, &branch.list, out)?
            }
        } else if let Some(else_list) = &branch.else_list {
            self.walk_list(st, dot, else_list, out)?
        } else {
            Flow::Normal
        };
        st.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        branch: &'t Branch,
        out: &mut String,
    ) -> ExecResult<Flow> {
        let mark = st.vars.len();
        let value = self.eval_pipeline(st, dot, &branch.pipe)?;
        let entries = match &value {
            Value::Object(object) => object.range_entries(),
            _ => None,
        };
        let value = match value {
            // Entries with non-string keys were taken above; nothing is left to iterate.
            Value::Object(_) if entries.is_some() => Value::Missing,
            Value::Object(object) => object.to_value(),
            other => other,
        };
        let n_decl = branch.pipe.decl.len();
        let mut ran = false;
        let iterate = |ctx: &mut Self,
                       st: &mut State<'t>,
                       key: Value,
                       elem: Value,
                       out: &mut String|
         -> ExecResult<bool> {
            ctx.step(st, branch.pos, &branch.pipe)?;
            // Range variables were pushed by eval_pipeline; update them for this iteration.
            if n_decl >= 1 {
                let idx = if n_decl == 1 { mark } else { mark + 1 };
                if let Some(slot) = st.vars.get_mut(idx) {
                    slot.1 = elem.clone();
                }
                if n_decl == 2
                    && let Some(slot) = st.vars.get_mut(mark)
                {
                    slot.1 = key;
                }
            }
            let inner_mark = st.vars.len();
            let flow = ctx.walk_list(st, &elem, &branch.list, out)?;
            st.vars.truncate(inner_mark);
            ctx.check_output(st, branch.pos, out, &branch.pipe)?;
            Ok(matches!(flow, Flow::Break))
        };
        for (key, item) in entries.into_iter().flatten() {
            ran = true;
            if iterate(self, st, key, item, out)? {
                break;
            }
        }
        // With `range $i, $e :=`, eval_pipeline pushed both variables in declaration order.
        match &value {
            Value::List(items) => {
                for (idx, item) in items.iter().enumerate() {
                    ran = true;
                    if iterate(self, st, Value::Int(idx as i64), item.clone(), out)? {
                        break;
                    }
                }
            }
            Value::Map(map) => {
                for (key, item) in map.entries() {
                    ran = true;
                    if iterate(self, st, Value::str(&key), item, out)? {
                        break;
                    }
                }
            }
            Value::Int(n) => {
                if n_decl > 1 {
                    return Err(self.error_at(
                        st,
                        branch.pos,
                        &branch.pipe,
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                for i in 0..*n {
                    ran = true;
                    if iterate(self, st, Value::Int(i), Value::Int(i), out)? {
                        break;
                    }
                }
            }
            Value::Missing | Value::Nil => {}
            other => {
                return Err(self.error_at(
                    st,
                    branch.pipe.pos,
                    &branch.pipe,
                    format!("range can't iterate over {other}"),
                ));
            }
        }
        if !ran && let Some(else_list) = &branch.else_list {
            let flow = self.walk_list(st, dot, else_list, out)?;
            st.vars.truncate(mark);
            return Ok(match flow {
                Flow::Normal => Flow::Normal,
                other => other,
            });
        }
        st.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn eval_pipeline<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        pipe: &'t Pipe,
    ) -> ExecResult<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            let result = self.eval_command(st, dot, cmd, value.take())?;
            // Go digs a nil interface down to an invalid value after each command.
            value = Some(match result {
                Value::Nil => Value::Missing,
                other => other,
            });
        }
        let value = value.unwrap_or(Value::Missing);
        for name in &pipe.decl {
            if pipe.is_assign {
                if let Some(slot) = st.vars.iter_mut().rev().find(|(n, _)| *n == name.as_str()) {
                    slot.1 = value.clone();
                }
            } else {
                st.vars.push((name.as_str(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(
        &self,
        st: &State<'_>,
        cmd: &Command,
        final_value: &Option<Value>,
    ) -> ExecResult<()> {
        if cmd.args.len() > 1 || final_value.is_some() {
            return Err(self.error_at(
                st,
                cmd.args[0].pos(),
                &cmd.args[0],
                format!("can't give argument to non-function {}", cmd.args[0]),
            ));
        }
        Ok(())
    }

    fn eval_command<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        cmd: &'t Command,
        final_value: Option<Value>,
    ) -> ExecResult<Value> {
        let first = &cmd.args[0];
        match first {
            Arg::Field { pos, idents } => self.eval_field_chain(
                st,
                dot,
                dot.clone(),
                first,
                *pos,
                idents,
                &cmd.args[1..],
                final_value,
                true,
            ),
            Arg::Chain { pos, node, fields } => {
                if matches!(**node, Arg::Nil(_)) {
                    return Err(self.error_at(
                        st,
                        *pos,
                        first,
                        format!("indirection through explicit nil in {first}"),
                    ));
                }
                let receiver = self.eval_arg(st, dot, node, Param::Reflect)?;
                self.eval_field_chain(
                    st,
                    dot,
                    receiver,
                    first,
                    *pos,
                    fields,
                    &cmd.args[1..],
                    final_value,
                    false,
                )
            }
            Arg::Identifier(_, name) => {
                self.eval_function(st, dot, name, cmd, &cmd.args[1..], final_value)
            }
            Arg::Pipe(pipe) => {
                self.not_a_function(st, cmd, &final_value)?;
                self.eval_pipeline_scoped(st, dot, pipe)
            }
            Arg::Variable { pos, name, idents } => {
                let value = self.var_value(st, *pos, first, name)?;
                if idents.is_empty() {
                    self.not_a_function(st, cmd, &final_value)?;
                    return Ok(value);
                }
                self.eval_field_chain(
                    st,
                    dot,
                    value,
                    first,
                    *pos,
                    idents,
                    &cmd.args[1..],
                    final_value,
                    false,
                )
            }
            Arg::Bool(_, b) => {
                self.not_a_function(st, cmd, &final_value)?;
                Ok(Value::Bool(*b))
            }
            Arg::Dot(_) => {
                self.not_a_function(st, cmd, &final_value)?;
                Ok(dot.clone())
            }
            Arg::Nil(pos) => {
                Err(self.error_at(st, *pos, first, "nil is not a command".to_string()))
            }
            Arg::Number(pos, number) => {
                self.not_a_function(st, cmd, &final_value)?;
                self.ideal_constant(st, *pos, first, number)
            }
            Arg::String { text, .. } => {
                self.not_a_function(st, cmd, &final_value)?;
                Ok(Value::String(text.clone()))
            }
        }
    }

    /// A parenthesized pipeline: its declarations do not leak (Go pushes them in the current
    /// scope, but a parenthesized pipeline cannot declare in practice).
    fn eval_pipeline_scoped<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        pipe: &'t Pipe,
    ) -> ExecResult<Value> {
        self.eval_pipeline(st, dot, pipe)
    }

    fn var_value(&self, st: &State<'_>, pos: usize, node: &Arg, name: &str) -> ExecResult<Value> {
        match st.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, value)) => Ok(value.clone()),
            None => Err(self.error_at(st, pos, node, format!("undefined variable: {name}"))),
        }
    }

    fn ideal_constant(
        &self,
        st: &State<'_>,
        pos: usize,
        node: &Arg,
        number: &parse::Number,
    ) -> ExecResult<Value> {
        if number.is_float_syntax
            && let Some(f) = number.float
        {
            return Ok(Value::Float(f));
        }
        if let Some(i) = number.int {
            return Ok(Value::Int(i));
        }
        if let Some(f) = number.float {
            return Err(self.error_at(
                st,
                pos,
                node,
                format!("{} overflows int", gofmt::format_float_v(f)),
            ));
        }
        Err(self.error_at(st, pos, node, format!("bad number {}", number.text)))
    }

    #[allow(clippy::too_many_arguments)] // Mirrors Go's evalFieldChain parameters.
    fn eval_field_chain<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        receiver: Value,
        node: &'t Arg,
        pos: usize,
        idents: &'t [String],
        args: &'t [Arg],
        final_value: Option<Value>,
        _from_dot: bool,
    ) -> ExecResult<Value> {
        let n = idents.len();
        let mut receiver = receiver;
        let mut boxed = false;
        for (idx, ident) in idents.iter().enumerate() {
            let last = idx + 1 == n;
            let (call_args, final_for_call) =
                if last { (args, final_value.clone()) } else { (&[][..], None) };
            receiver = self.eval_field(
                st,
                dot,
                ident,
                node,
                pos,
                call_args,
                final_for_call,
                receiver,
                boxed,
            )?;
            boxed = true;
        }
        Ok(receiver)
    }

    #[allow(clippy::too_many_arguments)] // Mirrors Go's evalField parameters.
    fn eval_field<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        field: &str,
        node: &'t Arg,
        pos: usize,
        args: &'t [Arg],
        final_value: Option<Value>,
        receiver: Value,
        boxed: bool,
    ) -> ExecResult<Value> {
        let has_args = !args.is_empty() || final_value.is_some();
        match &receiver {
            Value::Missing => {
                if self.options.missing_key == MissingKey::Error {
                    return Err(self.error_at(
                        st,
                        pos,
                        node,
                        format!("nil data; no entry for key {field:?}"),
                    ));
                }
                Ok(Value::Missing)
            }
            Value::Nil => Err(self.error_at(
                st,
                pos,
                node,
                format!("nil pointer evaluating interface {{}}.{field}"),
            )),
            Value::Map(map) => {
                if has_args {
                    return Err(self.error_at(
                        st,
                        pos,
                        node,
                        format!("{field} is not a method but has arguments"),
                    ));
                }
                match map.get(field) {
                    Some(value) => Ok(value),
                    None => match self.options.missing_key {
                        MissingKey::Default => Ok(Value::Missing),
                        MissingKey::Zero => Ok(Value::Nil),
                        MissingKey::Error => Err(self.error_at(
                            st,
                            pos,
                            node,
                            format!("map has no entry for key {field:?}"),
                        )),
                    },
                }
            }
            Value::Object(object) => {
                if !has_args && let Some(value) = object.field(field) {
                    return Ok(value);
                }
                let mut values = Vec::with_capacity(args.len() + 1);
                for arg in args {
                    values.push(self.eval_arg(st, dot, arg, Param::Any)?);
                }
                if let Some(final_value) = final_value {
                    values.push(if final_value.is_nil() { Value::Nil } else { final_value });
                }
                let object = object.clone();
                match object.call_method(field, &values, self) {
                    Some(Ok(value)) => Ok(value),
                    Some(Err(err)) => Err(Error::Exec {
                        location: st.tree.location(pos),
                        template: st.tree.name.to_string(),
                        node: node.to_string(),
                        message: format!("error calling {field}: {err}"),
                        source: Some(Box::new(err)),
                    }),
                    None => Err(self.error_at(
                        st,
                        pos,
                        node,
                        format!("can't evaluate field {field} in type {}", object.type_name()),
                    )),
                }
            }
            other => {
                let type_name = if boxed { "interface {}".to_string() } else { other.type_name() };
                Err(self.error_at(
                    st,
                    pos,
                    node,
                    format!("can't evaluate field {field} in type {type_name}"),
                ))
            }
        }
    }

    fn eval_function<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        name: &str,
        cmd: &'t Command,
        args: &'t [Arg],
        final_value: Option<Value>,
    ) -> ExecResult<Value> {
        let ident = &cmd.args[0];
        // Like Go's findFunction, registered functions shadow builtins (Sprig's `slice`).
        let set = self.set;
        let Some(func) = set.funcs.get(name) else {
            if let Some(builtin) = funcs::builtin(name) {
                return self.eval_builtin(st, dot, builtin, name, cmd, args, final_value);
            }
            return Err(self.error_at(
                st,
                ident.pos(),
                ident,
                format!("{name:?} is not a defined function"),
            ));
        };
        let values = self.eval_call_args(st, dot, func, name, ident, args, final_value)?;
        self.call(st, func, name, cmd, &values)
    }

    /// Evaluates arguments for a function with a signature, like Go's evalCall.
    #[allow(clippy::too_many_arguments)] // Mirrors Go's evalCall parameters.
    fn eval_call_args<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        func: &Func,
        name: &str,
        ident: &Arg,
        args: &'t [Arg],
        final_value: Option<Value>,
    ) -> ExecResult<Vec<Value>> {
        let sig = &func.signature;
        let n_in = args.len() + usize::from(final_value.is_some());
        let n_params = sig.params.len();
        if sig.variadic.is_some() {
            if n_in < n_params {
                return Err(self.error_at(
                    st,
                    ident.pos(),
                    ident,
                    format!(
                        "wrong number of args for {name}: want at least {n_params} got {}",
                        args.len()
                    ),
                ));
            }
        } else if n_in != n_params {
            return Err(self.error_at(
                st,
                ident.pos(),
                ident,
                format!("wrong number of args for {name}: want {n_params} got {n_in}"),
            ));
        }
        let param_at = |idx: usize| -> Param {
            if idx < n_params { sig.params[idx] } else { sig.variadic.unwrap_or(Param::Any) }
        };
        let mut values = Vec::with_capacity(n_in);
        for (idx, arg) in args.iter().enumerate() {
            values.push(self.eval_arg(st, dot, arg, param_at(idx))?);
        }
        if let Some(final_value) = final_value {
            let param = param_at(args.len());
            let value = self.validate_type(st, ident.pos(), ident, final_value, param)?;
            values.push(value);
        }
        Ok(values)
    }

    fn call(
        &mut self,
        st: &State<'_>,
        func: &Func,
        name: &str,
        cmd: &Command,
        values: &[Value],
    ) -> ExecResult<Value> {
        // Nested executions restore the current template themselves (see `nested`).
        let result = (func.body)(self, values);
        match result {
            Ok(value) => Ok(value),
            Err(FuncError::Call(message)) => {
                Err(self.error_at(st, cmd.pos, cmd, format!("error calling {name}: {message}")))
            }
            Err(FuncError::Plain(message)) => Err(self.error_at(st, cmd.pos, cmd, message)),
            Err(FuncError::Template(err)) => Err(Error::Exec {
                location: st.tree.location(cmd.pos),
                template: st.tree.name.to_string(),
                node: cmd.to_string(),
                message: format!("error calling {name}: {err}"),
                source: Some(err),
            }),
        }
    }

    /// Evaluates an argument for a parameter of type `param` (Go's evalArg).
    fn eval_arg<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        arg: &'t Arg,
        param: Param,
    ) -> ExecResult<Value> {
        let pos = arg.pos();
        let value = match arg {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => {
                return match param {
                    Param::Any | Param::Reflect => Ok(Value::Nil),
                    Param::Map => Ok(Value::Nil),
                    Param::List => Ok(Value::list(Vec::new())),
                    other => Err(self.error_at(
                        st,
                        pos,
                        arg,
                        format!("cannot assign nil to {}", param_name(other)),
                    )),
                };
            }
            Arg::Field { idents, .. } => {
                self.eval_field_chain(st, dot, dot.clone(), arg, pos, idents, &[], None, true)?
            }
            Arg::Variable { name, idents, .. } => {
                let value = self.var_value(st, pos, arg, name)?;
                if idents.is_empty() {
                    value
                } else {
                    self.eval_field_chain(st, dot, value, arg, pos, idents, &[], None, false)?
                }
            }
            Arg::Pipe(pipe) => self.eval_pipeline_scoped(st, dot, pipe)?,
            Arg::Identifier(_, name) => {
                // A function named as an argument is called with no arguments.
                let cmd = Command { pos, args: vec![arg.clone()] };
                self.eval_function_owned(st, dot, name, &cmd)?
            }
            Arg::Chain { node, fields, .. } => {
                if matches!(**node, Arg::Nil(_)) {
                    return Err(self.error_at(
                        st,
                        pos,
                        arg,
                        format!("indirection through explicit nil in {arg}"),
                    ));
                }
                let receiver = self.eval_arg(st, dot, node, Param::Reflect)?;
                self.eval_field_chain(st, dot, receiver, arg, pos, fields, &[], None, false)?
            }
            Arg::Bool(_, b) => {
                return match param {
                    Param::Any | Param::Reflect | Param::Bool => Ok(Value::Bool(*b)),
                    _ => Err(self.literal_mismatch(st, arg, param)),
                };
            }
            Arg::Number(_, number) => {
                return match param {
                    Param::Any | Param::Reflect => self.ideal_constant(st, pos, arg, number),
                    Param::Int => match number.int {
                        Some(i)
                            if !number.text.contains('.')
                                || number.float.is_some_and(|f| f.fract() == 0.0) =>
                        {
                            Ok(Value::Int(i))
                        }
                        _ => Err(self.error_at(
                            st,
                            pos,
                            arg,
                            format!("expected integer; found {arg}"),
                        )),
                    },
                    Param::Float => match number.float {
                        Some(f) => Ok(Value::Float(f)),
                        None => {
                            Err(self.error_at(st, pos, arg, format!("expected float; found {arg}")))
                        }
                    },
                    _ => Err(self.literal_mismatch(st, arg, param)),
                };
            }
            Arg::String { text, .. } => {
                return match param {
                    Param::Any | Param::Reflect | Param::String => Ok(Value::String(text.clone())),
                    _ => Err(self.literal_mismatch(st, arg, param)),
                };
            }
        };
        self.validate_type(st, pos, arg, value, param)
    }

    fn eval_function_owned(
        &mut self,
        st: &mut State<'_>,
        dot: &Value,
        name: &str,
        cmd: &Command,
    ) -> ExecResult<Value> {
        let set = self.set;
        let Some(func) = set.funcs.get(name) else {
            if let Some(builtin) = funcs::builtin(name) {
                // A builtin used as a bare argument gets no arguments.
                let (min, _) = funcs::builtin_arity(builtin);
                if min > 0 {
                    let message =
                        format!("wrong number of args for {name}: want at least {min} got 0");
                    return Err(self.error_at(st, cmd.pos, cmd, message));
                }
                return funcs::call_builtin_values(builtin, &[]).map_err(|message| {
                    self.error_at(st, cmd.pos, cmd, message.into_message(name))
                });
            }
            return Err(self.error_at(
                st,
                cmd.pos,
                cmd,
                format!("{name:?} is not a defined function"),
            ));
        };
        let _ = dot;
        let sig = &func.signature;
        if !sig.params.is_empty() {
            let message = if sig.variadic.is_some() {
                format!("wrong number of args for {name}: want at least {} got 0", sig.params.len())
            } else {
                format!("wrong number of args for {name}: want {} got 0", sig.params.len())
            };
            return Err(self.error_at(st, cmd.pos, cmd, message));
        }
        self.call(st, func, name, cmd, &[])
    }

    fn literal_mismatch(&self, st: &State<'_>, arg: &Arg, param: Param) -> Error {
        let expected = match param {
            Param::String => "string",
            Param::Int => "integer",
            Param::Float => "float",
            Param::Bool => "bool",
            _ => {
                return self.error_at(
                    st,
                    arg.pos(),
                    arg,
                    format!("can't handle {arg} for arg of type {}", param_name(param)),
                );
            }
        };
        self.error_at(st, arg.pos(), arg, format!("expected {expected}; found {arg}"))
    }

    /// Checks a computed value against a parameter type (Go's validateType).
    fn validate_type(
        &self,
        st: &State<'_>,
        pos: usize,
        node: &dyn std::fmt::Display,
        value: Value,
        param: Param,
    ) -> ExecResult<Value> {
        let ok = match (&value, param) {
            (_, Param::Reflect) => return Ok(value),
            (Value::Missing, Param::Any) => return Ok(Value::Nil),
            (Value::Missing, Param::Map) => return Ok(Value::Nil),
            (Value::Missing, Param::List) => return Ok(Value::list(Vec::new())),
            (Value::Missing, _) => {
                return Err(self.error_at(
                    st,
                    pos,
                    node,
                    format!("invalid value; expected {}", param_name(param)),
                ));
            }
            (_, Param::Any) => true,
            (Value::String(_), Param::String) => true,
            (Value::Int(_), Param::Int) => true,
            (Value::Float(_), Param::Float) => true,
            (Value::Bool(_), Param::Bool) => true,
            (Value::Map(_), Param::Map) => true,
            (Value::List(_), Param::List) => true,
            _ => false,
        };
        if ok {
            return Ok(value);
        }
        let got = match &value {
            Value::Nil => "interface {}".to_string(),
            other => other.type_name(),
        };
        Err(self.error_at(
            st,
            pos,
            node,
            format!("wrong type for value; expected {}; got {got}", param_name(param)),
        ))
    }

    #[allow(clippy::too_many_arguments)] // Mirrors Go's evalCall parameters.
    fn eval_builtin<'t>(
        &mut self,
        st: &mut State<'t>,
        dot: &Value,
        builtin: funcs::Builtin,
        name: &str,
        cmd: &'t Command,
        args: &'t [Arg],
        final_value: Option<Value>,
    ) -> ExecResult<Value> {
        let ident = &cmd.args[0];
        let n_in = args.len() + usize::from(final_value.is_some());
        let (min, max) = funcs::builtin_arity(builtin);
        if n_in < min || max.is_some_and(|max| n_in > max) {
            let message = match max {
                Some(max) if max == min => {
                    format!("wrong number of args for {name}: want {min} got {n_in}")
                }
                _ => format!(
                    "wrong number of args for {name}: want at least {min} got {}",
                    args.len()
                ),
            };
            return Err(self.error_at(st, ident.pos(), ident, message));
        }
        // `and` and `or` short-circuit: arguments are evaluated only as needed.
        if matches!(builtin, funcs::Builtin::And | funcs::Builtin::Or) {
            let want = matches!(builtin, funcs::Builtin::Or);
            let mut value = Value::Missing;
            for arg in args {
                value = self.eval_arg(st, dot, arg, Param::Reflect)?;
                if value.is_true() == want {
                    return Ok(value);
                }
            }
            if let Some(final_value) = final_value {
                value = final_value;
            }
            return Ok(value);
        }
        let param = funcs::builtin_param(builtin);
        let mut values = Vec::with_capacity(n_in);
        for (idx, arg) in args.iter().enumerate() {
            let p = if idx == 0 && matches!(builtin, funcs::Builtin::Printf) {
                Param::String
            } else {
                param
            };
            values.push(self.eval_arg(st, dot, arg, p)?);
        }
        if let Some(final_value) = final_value {
            let p = if args.is_empty() && matches!(builtin, funcs::Builtin::Printf) {
                Param::String
            } else {
                param
            };
            values.push(self.validate_type(st, ident.pos(), ident, final_value, p)?);
        }
        funcs::call_builtin_values(builtin, &values)
            .map_err(|err| self.error_at(st, cmd.pos, cmd, err.into_message(name)))
    }
}

fn param_name(param: Param) -> &'static str {
    match param {
        Param::Any => "interface {}",
        Param::String => "string",
        Param::Int => "int",
        Param::Float => "float64",
        Param::Bool => "bool",
        Param::Map => "map[string]interface {}",
        Param::List => "[]interface {}",
        Param::Reflect => "reflect.Value",
    }
}

/// Go's printValue for an action's result.
fn print_value(out: &mut String, value: &Value) {
    match value {
        Value::Missing | Value::Nil => out.push_str("<no value>"),
        Value::String(s) => out.push_str(s),
        other => gofmt::write_value(out, other),
    }
}

struct TemplateDisplay<'a> {
    name: &'a str,
    pipe: Option<&'a Pipe>,
}

impl std::fmt::Display for TemplateDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pipe {
            Some(pipe) => write!(f, "{{{{template {:?} {pipe}}}}}", self.name),
            None => write!(f, "{{{{template {:?}}}}}", self.name),
        }
    }
}
