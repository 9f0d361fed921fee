//! Sprig string functions.

use super::{Funcs, pure, sig};
use crate::Param::*;
use crate::value::Value;

pub(super) fn register(funcs: &mut Funcs) {
    pure(funcs, "upper", sig(&[String]), |a| Ok(Value::from(s(&a[0]).to_uppercase())));
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}
