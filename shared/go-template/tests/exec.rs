//! Execution tables in the spirit of Go's `text/template/exec_test.go`.

use sluice_go_template::{MissingKey, Options, TemplateSet, Value};

fn data() -> Value {
    Value::from_json(&serde_json::json!({
        "Values": {
            "name": "demo",
            "port": 8080,
            "big": 1000000,
            "ratio": 1.5,
            "enabled": true,
            "empty": "",
            "list": ["a", "b", "c"],
            "nested": {"x": {"y": "deep"}},
            "map": {"b": 2, "a": 1},
            "nothing": null,
        },
        "Release": {"Name": "rel", "Namespace": "ns"},
    }))
}

#[track_caller]
fn check_with(missing_key: MissingKey, template: &str, expected: &str) {
    let mut set = TemplateSet::new();
    set.set_options(Options { missing_key, ..Options::default() });
    let result = set.parse("t", template).and_then(|()| set.execute("t", &data()));
    match result {
        Ok(out) => assert_eq!(out, expected, "template {template:?}"),
        Err(err) => assert_eq!(format!("ERROR: {err}"), expected, "template {template:?}"),
    }
}

#[track_caller]
fn check(template: &str, expected: &str) {
    check_with(MissingKey::Default, template, expected);
}

#[track_caller]
fn check_zero(template: &str, expected: &str) {
    check_with(MissingKey::Zero, template, expected);
}

#[test]
fn text_and_fields() {
    check("hello", "hello");
    check("{{.Values.name}}", "demo");
    check("{{ .Values.port }}", "8080");
    check("{{ .Values.big }}", "1e+06");
    check("{{ .Values.ratio }}", "1.5");
    check("{{ .Values.list }}", "[a b c]");
    check("{{ .Values.map }}", "map[a:1 b:2]");
    check("{{ .Values.nested.x.y }}", "deep");
    check("{{ .Values.missing }}", "<no value>");
    check("{{ .Values.missing.deeper }}", "<no value>");
    check("{{ .Values.nothing }}", "<no value>");
    check("{{ print .Values.missing }}", "<nil>");
    check_zero("{{ .Values.missing }}", "<no value>");
    check_zero(
        "{{ .Values.a.b.c }}",
        "ERROR: template: t:1:10: executing \"t\" at <.Values.a.b.c>: nil pointer evaluating interface {}.b",
    );
    check(
        "{{ .Values.list.foo }}",
        "ERROR: template: t:1:10: executing \"t\" at <.Values.list.foo>: can't evaluate field foo in type interface {}",
    );
}

#[test]
fn trimming_and_comments() {
    check("a  {{- 1 -}}  b", "a1b");
    check("a\n{{- /* comment */ -}}\nb", "ab");
    check("a {{/* c */}} b", "a  b");
    check("{{ -3 }}", "-3");
}

#[test]
fn control_structures() {
    check("{{ if .Values.enabled }}yes{{ else }}no{{ end }}", "yes");
    check("{{ if .Values.empty }}yes{{ else if .Values.port }}port{{ else }}no{{ end }}", "port");
    check("{{ with .Values.nested.x }}{{ .y }}{{ end }}", "deep");
    check("{{ with .Values.empty }}x{{ else }}empty{{ end }}", "empty");
    check("{{ range .Values.list }}{{ . }},{{ end }}", "a,b,c,");
    check("{{ range $i, $v := .Values.list }}{{ $i }}={{ $v }} {{ end }}", "0=a 1=b 2=c ");
    check("{{ range $k, $v := .Values.map }}{{ $k }}:{{ $v }} {{ end }}", "a:1 b:2 ");
    check("{{ range .Values.missing }}x{{ else }}none{{ end }}", "none");
    check("{{ range 3 }}{{ . }}{{ end }}", "012");
    check("{{ range .Values.list }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}", "a");
    check(
        "{{ range .Values.list }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
        "ac",
    );
    check("{{ range .Values.list }}{{ $.Values.name }}{{ end }}", "demodemodemo");
}

#[test]
fn variables() {
    check("{{ $x := 1 }}{{ $x }}", "1");
    check("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2");
    check("{{ $x := 1 }}{{ if true }}{{ $x = 3 }}{{ end }}{{ $x }}", "3");
    check("{{ $x := .Values.nested }}{{ $x.x.y }}", "deep");
    check("{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}", "21");
    check("{{ $y }}", "ERROR: template: t:1: undefined variable \"$y\"");
}

#[test]
fn templates_and_blocks() {
    check("{{ define \"a\" }}A{{ . }}{{ end }}{{ template \"a\" 1 }}", "A1");
    check("{{ block \"b\" . }}B{{ .Values.name }}{{ end }}", "Bdemo");
    check(
        "{{ template \"nope\" }}",
        "ERROR: template: t:1:3: executing \"t\" at <{{template \"nope\"}}>: template \"nope\" not defined",
    );
}

#[test]
fn builtins() {
    check("{{ and 1 0 }}", "0");
    check("{{ or 0 \"\" \"x\" }}", "x");
    check("{{ or .Values.missing \"dflt\" }}", "dflt");
    check("{{ not .Values.enabled }}", "false");
    check("{{ len .Values.list }}", "3");
    check("{{ index .Values.list 1 }}", "b");
    check("{{ index .Values.map \"a\" }}", "1");
    check("{{ index .Values.nested \"x\" \"y\" }}", "deep");
    check(
        "{{ index .Values.list 5 }}",
        "ERROR: template: t:1:3: executing \"t\" at <index .Values.list 5>: error calling index: index out of range: 5",
    );
    check("{{ slice .Values.list 1 }}", "[b c]");
    // Sprig's `slice` shadows Go's builtin (as in Helm) and rejects strings.
    check(
        "{{ slice \"abcdef\" 1 3 }}",
        "ERROR: template: t:1:3: executing \"t\" at <slice \"abcdef\" 1 3>: error calling slice: list should be type of slice or array but string",
    );
    let mut go_only = TemplateSet::without_sprig();
    go_only.parse("g", "{{ slice \"abcdef\" 1 3 }}").unwrap();
    assert_eq!(go_only.execute("g", &Value::Nil).unwrap(), "bc");
    check("{{ print 1 2 \"a\" }}", "1 2a");
    check("{{ printf \"%s-%d\" \"a\" 3 }}", "a-3");
    check("{{ println \"a\" }}", "a\n");
    check("{{ html \"<a href='x'>\" }}", "&lt;a href=&#39;x&#39;&gt;");
    check("{{ js \"a'b\" }}", "a\\'b");
    check("{{ urlquery \"a b&c\" }}", "a+b%26c");
    check("{{ eq 1 1 }}{{ eq \"a\" \"b\" \"a\" }}{{ ne 1 2 }}", "truetruetrue");
    check("{{ lt 1 2 }}{{ le 2 2 }}{{ gt 1.5 1.0 }}{{ ge \"b\" \"a\" }}", "truetruetruetrue");
    check(
        "{{ eq .Values.port 8080 }}",
        "ERROR: template: t:1:3: executing \"t\" at <eq .Values.port 8080>: error calling eq: incompatible types for comparison",
    );
    check("{{ eq .Values.missing \"x\" }}", "false");
    check("{{ .Values.name | printf \"%s!\" }}", "demo!");
    check("{{ \"x\" | printf \"%s%s\" \"y\" }}", "yx");
    check("{{ (index .Values.list 0) }}", "a");
    check("{{ (.Values.nested).x.y }}", "deep");
    check(
        "{{ 1.0 }} {{ 1e3 }} {{ 0x10 }} {{ 'a' }} {{ 0x1p4 }} {{ 0x1e3 }}",
        "1 1000 16 97 16 483",
    );
}

#[test]
fn parse_errors() {
    check("{{ nofunc 1 }}", "ERROR: template: t:1: function \"nofunc\" not defined");
    check("{{ if true }}", "ERROR: template: t:1: unexpected EOF");
    check("{{ end }}", "ERROR: template: t:1: unexpected {{end}}");
    check("\n{{ \"abc }}", "ERROR: template: t:2: unterminated quoted string");
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let deep_parens = format!("{{{{ {}1{} }}}}", "(".repeat(1000), ")".repeat(1000));
    check(&deep_parens, "ERROR: template: t:1: template nesting exceeds 100 levels");
    let deep_ifs = format!("{}x{}", "{{ if true }}".repeat(1000), "{{ end }}".repeat(1000));
    check(&deep_ifs, "ERROR: template: t:1: template nesting exceeds 100 levels");
    // A map that contains itself prints with a nesting cut-off instead of recursing forever.
    let mut set = TemplateSet::new();
    set.parse(
        "t",
        r#"{{ $d := dict }}{{ $_ := set $d "self" $d }}{{ len (toJson $d) }}{{ $d | len }}"#,
    )
    .unwrap();
    assert_eq!(set.execute("t", &Value::Nil).unwrap(), "9131");
}

#[test]
fn unbounded_template_recursion_stops_at_the_depth_limit() {
    check(
        r#"{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}"#,
        "ERROR: template: t:1:19: executing \"r\" at <{{template \"r\" .}}>: exceeded maximum template depth (200)",
    );
}

#[test]
fn more_go_exec_cases() {
    check("{{ with $x := .Values.name }}{{ $x }}-{{ . }}{{ end }}", "demo-demo");
    check("{{ with .Values.missing }}a{{ else with .Values.name }}{{ . }}{{ end }}", "demo");
    check("{{ if false }}a{{ else if false }}b{{ else if true }}c{{ end }}", "c");
    check(
        "{{ range $i, $e := .Values.list }}{{ if $i }},{{ end }}{{ $e }}{{ else }}empty{{ end }}",
        "a,b,c",
    );
    check("{{ range .Values.list -}} {{ . }} {{- end }}", "abc");
    check("{{ range $k, $v := .Values.nested }}{{ $k }}{{ $v.y }}{{ end }}", "xdeep");
    check("{{ range $x := .Values.list }}{{ $x }}{{ end }}", "abc");
    check(
        "{{ range .Values.ratio }}{{ end }}",
        "ERROR: template: t:1:9: executing \"t\" at <.Values.ratio>: range can't iterate over 1.5",
    );
    check("{{ printf \"%-5s|%5.1f|%03d\" \"ab\" 3.14159 7 }}", "ab   |  3.1|007");
    check("{{ printf \"%v %v\" .Values.enabled .Values.nothing }}", "true <nil>");
    check(
        "{{ lt \"a\" \"b\" }} {{ eq 1.5 .Values.ratio }} {{ ne .Values.name \"x\" }}",
        "true true true",
    );
    check("{{ len .Values.map }} {{ len \"héllo\" }}", "2 6");
    check("{{ index \"abc\" 1 }}", "98");
    check("{{ .Values.name | len | printf \"%d chars\" }}", "4 chars");
    check("{{ $x := 0 }}{{ range .Values.list }}{{ $x = add $x 1 }}{{ end }}{{ $x }}", "3");
    check(
        "{{ define \"t2\" }}[{{ . }}]{{ end }}{{ template \"t2\" .Values.name }}{{ template \"t2\" }}",
        "[demo][<no value>]",
    );
    check("{{ \"a\" }}{{ `raw\\n` }}{{ \"esc\\t\" }}", "araw\\nesc\t");
    check("{{ .Values.nested.x.missing }}", "<no value>");
    check(
        "{{ not .Values.missing }} {{ and .Values.name .Values.port }} {{ or .Values.empty .Values.zero }}",
        "true 8080 <no value>",
    );
    check("{{ nil }}", "ERROR: template: t:1:3: executing \"t\" at <nil>: nil is not a command");
    check(
        "{{ .Values.name 1 }}",
        "ERROR: template: t:1:10: executing \"t\" at <.Values.name>: name is not a method but has arguments",
    );
    check(
        "{{ 1 2 }}",
        "ERROR: template: t:1:3: executing \"t\" at <1>: can't give argument to non-function 1",
    );
    check(
        "{{ $x := 1 }}{{ $x.foo }}",
        "ERROR: template: t:1:18: executing \"t\" at <$x.foo>: can't evaluate field foo in type int",
    );
}

#[test]
fn missing_key_modes() {
    check_with(
        MissingKey::Error,
        "{{ .Values.nope }}",
        "ERROR: template: t:1:10: executing \"t\" at <.Values.nope>: map has no entry for key \"nope\"",
    );
    check_zero("{{ .Values.missing | default \"d\" }}", "d");
    check_zero("{{ if .Values.missing }}x{{ else }}y{{ end }}", "y");
    check_zero("{{ $v := .Values.missing }}{{ $v.deeper }}", "<no value>");
}

#[test]
fn recursion_through_a_registered_include_stops_at_the_depth_limit() {
    use sluice_go_template::{Func, FuncError, Param, Signature};
    let mut set = TemplateSet::new();
    set.add_func(
        "include",
        Func::new(Signature::fixed(&[Param::String, Param::Any]), |ctx, args| {
            let name = args[0].as_str().unwrap_or("").to_string();
            ctx.execute_template(&name, &args[1]).map(Value::from).map_err(FuncError::from)
        }),
    );
    set.parse(
        "t",
        r#"{{ define "r" }}{{ include "r" . | nindent 2 }}{{ end }}{{ include "r" . }}"#,
    )
    .unwrap();
    let err = set.execute("t", &Value::Nil).unwrap_err();
    assert_eq!(err.innermost().to_string(), "exceeded maximum template depth (200)");
    assert_eq!(err.frames().len(), 201);
    assert_eq!(err.frames()[1].template, "r");
}

#[test]
fn execute_text_sees_and_scopes_its_defines() {
    use sluice_go_template::{Func, FuncError, Param, Signature};
    let mut set = TemplateSet::new();
    set.add_func(
        "include",
        Func::new(Signature::fixed(&[Param::String, Param::Any]), |ctx, args| {
            let name = args[0].as_str().unwrap_or("").to_string();
            ctx.execute_template(&name, &args[1]).map(Value::from).map_err(FuncError::from)
        }),
    );
    set.add_func(
        "tpl",
        Func::new(Signature::fixed(&[Param::String, Param::Any]), |ctx, args| {
            let text = args[0].as_str().unwrap_or("").to_string();
            ctx.execute_text("gotpl", &text, &args[1]).map(Value::from).map_err(FuncError::from)
        }),
    );
    set.parse(
        "t",
        r#"{{ define "base" }}base{{ end }}{{ range list 1 2 }}{{ tpl "{{ define \"x\" }}X{{ . }}{{ end }}{{ include \"x\" . }}{{ include \"base\" . }}" . }};{{ end }}{{ tpl "{{ .a }}" (dict "a" "A") }}"#,
    )
    .unwrap();
    assert_eq!(set.execute("t", &Value::Nil).unwrap(), "X1base;X2base;A");
    // Defines made inside `tpl` do not leak into the set.
    set.parse("u", r#"{{ tpl "{{ define \"y\" }}Y{{ end }}" . }}{{ include "y" . }}"#).unwrap();
    let err = set.execute("u", &Value::Nil).unwrap_err();
    assert!(err.to_string().contains(r#"no template "y""#), "{err}");
}
