//! Sprig v3 functions (`Masterminds/sprig`), as Helm exposes them.

use std::collections::HashMap;

use crate::error::FuncError;
use crate::exec::Context;
use crate::value::Value;
use crate::{Func, Param, Signature};

mod strings;

type Funcs = HashMap<String, Func>;

/// Registers a function in the map.
pub(crate) fn add(
    funcs: &mut Funcs,
    name: &str,
    signature: Signature,
    body: impl Fn(&mut Context<'_>, &[Value]) -> Result<Value, FuncError> + Send + Sync + 'static,
) {
    funcs.insert(name.to_string(), Func::new(signature, body));
}

/// Registers a pure function (no context).
pub(crate) fn pure(
    funcs: &mut Funcs,
    name: &str,
    signature: Signature,
    body: impl Fn(&[Value]) -> Result<Value, FuncError> + Send + Sync + 'static,
) {
    add(funcs, name, signature, move |_ctx, args| body(args));
}

/// Shorthand for a fixed signature.
pub(crate) fn sig(params: &[Param]) -> Signature {
    Signature::fixed(params)
}

/// Shorthand for a variadic signature.
pub(crate) fn var(params: &[Param], rest: Param) -> Signature {
    Signature::variadic(params, rest)
}

/// Registers every Sprig function.
pub(crate) fn register(funcs: &mut Funcs) {
    strings::register(funcs);
}
