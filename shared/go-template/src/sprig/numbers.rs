//! Sprig math and number conversion functions.

use super::{Funcs, arg_int, arg_str, fail, pure, sig, to_float64, to_int64, var};
use crate::Param::{Any, Float, Int, String as Str};
use crate::value::Value;

/// Largest list `until`/`seq` may build.
const MAX_ITEMS: i64 = 1_000_000;

pub(super) fn register(funcs: &mut Funcs) {
    pure(funcs, "atoi", sig(&[Str]), |a| Ok(Value::Int(arg_str(a, 0).parse::<i64>().unwrap_or(0))));
    pure(funcs, "int", sig(&[Any]), |a| Ok(Value::Int(to_int64(&a[0]))));
    pure(funcs, "int64", sig(&[Any]), |a| Ok(Value::Int(to_int64(&a[0]))));
    pure(funcs, "float64", sig(&[Any]), |a| Ok(Value::Float(to_float64(&a[0]))));
    pure(funcs, "toDecimal", sig(&[Any]), |a| {
        let text = super::strval(&a[0]);
        Ok(Value::Int(i64::from_str_radix(&text, 8).unwrap_or(0)))
    });
    pure(funcs, "add1", sig(&[Any]), |a| Ok(Value::Int(to_int64(&a[0]).wrapping_add(1))));
    pure(funcs, "add", var(&[], Any), |a| {
        Ok(Value::Int(a.iter().map(to_int64).fold(0i64, i64::wrapping_add)))
    });
    pure(funcs, "sub", sig(&[Any, Any]), |a| {
        Ok(Value::Int(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))))
    });
    pure(funcs, "mul", var(&[Any], Any), |a| {
        Ok(Value::Int(a.iter().map(to_int64).fold(1i64, i64::wrapping_mul)))
    });
    pure(funcs, "div", sig(&[Any, Any]), |a| {
        let divisor = to_int64(&a[1]);
        if divisor == 0 {
            return fail("runtime error: integer divide by zero");
        }
        Ok(Value::Int(to_int64(&a[0]).wrapping_div(divisor)))
    });
    pure(funcs, "mod", sig(&[Any, Any]), |a| {
        let divisor = to_int64(&a[1]);
        if divisor == 0 {
            return fail("runtime error: integer divide by zero");
        }
        Ok(Value::Int(to_int64(&a[0]).wrapping_rem(divisor)))
    });
    for name in ["max", "biggest"] {
        pure(funcs, name, var(&[Any], Any), |a| {
            Ok(Value::Int(a.iter().map(to_int64).max().unwrap_or(0)))
        });
    }
    pure(funcs, "min", var(&[Any], Any), |a| {
        Ok(Value::Int(a.iter().map(to_int64).min().unwrap_or(0)))
    });
    pure(funcs, "maxf", var(&[Any], Any), |a| {
        Ok(Value::Float(a.iter().map(to_float64).fold(f64::NEG_INFINITY, f64::max)))
    });
    pure(funcs, "minf", var(&[Any], Any), |a| {
        Ok(Value::Float(a.iter().map(to_float64).fold(f64::INFINITY, f64::min)))
    });
    pure(funcs, "add1f", sig(&[Any]), |a| {
        Ok(Value::Float(decimal_op(to_float64(&a[0]), 1.0, '+')))
    });
    pure(funcs, "addf", var(&[], Any), |a| {
        Ok(Value::Float(a.iter().map(to_float64).fold(0.0, |x, y| decimal_op(x, y, '+'))))
    });
    pure(funcs, "subf", var(&[Any], Any), |a| {
        let first = to_float64(&a[0]);
        Ok(Value::Float(a[1..].iter().map(to_float64).fold(first, |x, y| decimal_op(x, y, '-'))))
    });
    pure(funcs, "mulf", var(&[Any], Any), |a| {
        let first = to_float64(&a[0]);
        Ok(Value::Float(a[1..].iter().map(to_float64).fold(first, |x, y| decimal_op(x, y, '*'))))
    });
    pure(funcs, "divf", var(&[Any], Any), |a| {
        let first = to_float64(&a[0]);
        let mut result = first;
        for divisor in a[1..].iter().map(to_float64) {
            if divisor == 0.0 {
                return fail("decimal division by 0");
            }
            result = decimal_op(result, divisor, '/');
        }
        Ok(Value::Float(result))
    });
    pure(funcs, "floor", sig(&[Any]), |a| Ok(Value::Float(to_float64(&a[0]).floor())));
    pure(funcs, "ceil", sig(&[Any]), |a| Ok(Value::Float(to_float64(&a[0]).ceil())));
    pure(funcs, "round", var(&[Any, Int], Float), |a| {
        let round_on = a.get(2).map_or(0.5, to_float64);
        let value = to_float64(&a[0]);
        let pow = 10f64.powf(arg_int(a, 1) as f64);
        let digit = pow * value;
        let fraction = digit.fract();
        let rounded = if fraction >= round_on { digit.ceil() } else { digit.floor() };
        Ok(Value::Float(rounded / pow))
    });
    pure(funcs, "randInt", sig(&[Int, Int]), |a| {
        use rand::Rng;
        let (min, max) = (arg_int(a, 0), arg_int(a, 1));
        if max <= min {
            return fail("invalid argument to Intn");
        }
        Ok(Value::Int(rand::rng().random_range(min..max)))
    });
    pure(funcs, "until", sig(&[Int]), |a| {
        let count = arg_int(a, 0);
        let step = if count < 0 { -1 } else { 1 };
        until_step(0, count, step).map(ints_to_list)
    });
    pure(funcs, "untilStep", sig(&[Int, Int, Int]), |a| {
        until_step(arg_int(a, 0), arg_int(a, 1), arg_int(a, 2)).map(ints_to_list)
    });
    pure(funcs, "seq", var(&[], Int), |a| {
        let params: Vec<i64> = (0..a.len()).map(|i| arg_int(a, i)).collect();
        let items = match params.as_slice() {
            [end] => {
                let step = if *end < 1 { -1 } else { 1 };
                until_step(1, end + step, step)?
            }
            [start, end] => {
                let step = if end < start { -1 } else { 1 };
                until_step(*start, end + step, step)?
            }
            [start, step, end] => {
                let mut increment = 1;
                if end < start {
                    increment = -1;
                    if *step > 0 {
                        return Ok(Value::str(""));
                    }
                }
                until_step(*start, end + increment, *step)?
            }
            _ => Vec::new(),
        };
        let parts: Vec<String> = items.iter().map(i64::to_string).collect();
        Ok(Value::from(parts.join(" ")))
    });
}

fn ints_to_list(items: Vec<i64>) -> Value {
    Value::list(items.into_iter().map(Value::Int).collect())
}

/// Sprig's `untilStep`.
fn until_step(start: i64, stop: i64, step: i64) -> Result<Vec<i64>, crate::FuncError> {
    let mut items = Vec::new();
    let push = |i: i64, items: &mut Vec<i64>| -> Result<(), crate::FuncError> {
        if items.len() as i64 >= MAX_ITEMS {
            return fail(format!("list of more than {MAX_ITEMS} items"));
        }
        items.push(i);
        Ok(())
    };
    if stop < start {
        if step >= 0 {
            return Ok(items);
        }
        let mut i = start;
        while i > stop {
            push(i, &mut items)?;
            i += step;
        }
        return Ok(items);
    }
    if step <= 0 {
        return Ok(items);
    }
    let mut i = start;
    while i < stop {
        push(i, &mut items)?;
        i += step;
    }
    Ok(items)
}

/// Decimal places of a float's shortest representation.
fn scale(x: f64) -> i32 {
    let text = crate::gofmt::format_float(x, 'e', -1);
    let Some((mantissa, exponent)) = text.split_once('e') else { return 0 };
    let digits = mantissa.trim_start_matches('-').replace('.', "");
    let exponent: i32 = exponent.parse().unwrap_or(0);
    (digits.len() as i32 - 1 - exponent).max(0)
}

/// `shopspring/decimal` arithmetic on the shortest decimal forms, as Sprig's `addf` family.
fn decimal_op(x: f64, y: f64, op: char) -> f64 {
    let result = match op {
        '+' => x + y,
        '-' => x - y,
        '*' => x * y,
        _ => x / y,
    };
    let places = match op {
        '+' | '-' => scale(x).max(scale(y)),
        '*' => scale(x) + scale(y),
        _ => 16,
    };
    if places > 15 || !result.is_finite() {
        return result;
    }
    format!("{:.*}", places as usize, result).parse().unwrap_or(result)
}
