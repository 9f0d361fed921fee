//! Go text/template with Sprig functions, with Go's semantics and error messages.
