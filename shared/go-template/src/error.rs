//! Template errors, rendered exactly in Go's text/template format.

use std::fmt;

/// A parse or execution error of a template.
#[derive(Debug, Clone)]
pub enum Error {
    /// A syntax error: `template: NAME:LINE: MESSAGE`.
    Parse {
        /// The name given to `parse` (the file).
        name: String,
        /// 1-based line.
        line: usize,
        /// Go's message, e.g. `function "foo" not defined`.
        message: String,
    },
    /// An execution error at a node: `template: LOCATION: executing "TEMPLATE" at <NODE>: MESSAGE`.
    Exec {
        /// `FILE:LINE:COL` of the node (column is a 0-based byte offset, as in Go).
        location: String,
        /// The template being executed (a file name or a `define` name).
        template: String,
        /// The node's source form, as Go prints it.
        node: String,
        /// The message, e.g. `error calling include: …` or `nil pointer evaluating interface {}.x`.
        message: String,
        /// The error returned by a called function, when the message wraps one.
        source: Option<Box<Error>>,
    },
    /// An execution error not tied to a node: `template: NAME: MESSAGE`.
    Template {
        /// The template name.
        template: String,
        /// The message.
        message: String,
    },
    /// A plain message, e.g. an error a function returned that did not come from a template.
    Message(String),
}

/// One frame of the template call stack recovered from nested errors (outermost first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `FILE:LINE:COL`.
    pub location: String,
    /// The template executing at that point.
    pub template: String,
    /// The node being evaluated.
    pub node: String,
}

impl Error {
    /// The nested error of a failed function call (e.g. the error inside an `include`).
    pub fn source_error(&self) -> Option<&Error> {
        match self {
            Error::Exec { source, .. } => source.as_deref(),
            _ => None,
        }
    }

    /// The chain of execution frames, outermost first (the include stack).
    pub fn frames(&self) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut current = Some(self);
        while let Some(err) = current {
            if let Error::Exec { location, template, node, .. } = err {
                frames.push(Frame {
                    location: location.clone(),
                    template: template.clone(),
                    node: node.clone(),
                });
            }
            current = err.source_error();
        }
        frames
    }

    /// The innermost error (the root cause).
    pub fn innermost(&self) -> &Error {
        let mut current = self;
        while let Some(next) = current.source_error() {
            current = next;
        }
        current
    }

    /// The message without location prefix (for `Exec`, the text after `at <…>: `).
    pub fn message(&self) -> &str {
        match self {
            Error::Parse { message, .. }
            | Error::Exec { message, .. }
            | Error::Template { message, .. } => message,
            Error::Message(message) => message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse { name, line, message } => write!(f, "template: {name}:{line}: {message}"),
            Error::Exec { location, template, node, message, .. } => {
                write!(f, "template: {location}: executing {template:?} at <{node}>: {message}")
            }
            Error::Template { template, message } => write!(f, "template: {template}: {message}"),
            Error::Message(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

/// The failure of a template function.
#[derive(Debug, Clone)]
pub enum FuncError {
    /// A returned error: the executor reports `error calling NAME: MESSAGE`.
    Call(String),
    /// A nested template error (e.g. from `include`): `error calling NAME: <error>`, with the
    /// error kept as data.
    Template(Box<Error>),
    /// A message reported as is, without the `error calling` prefix (argument type errors).
    Plain(String),
}

impl FuncError {
    /// A returned error with a message.
    pub fn call(message: impl Into<String>) -> FuncError {
        FuncError::Call(message.into())
    }
}

impl From<Error> for FuncError {
    fn from(err: Error) -> Self {
        FuncError::Template(Box::new(err))
    }
}

impl fmt::Display for FuncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FuncError::Call(message) | FuncError::Plain(message) => f.write_str(message),
            FuncError::Template(err) => write!(f, "{err}"),
        }
    }
}
