//! Sprig function tables: one line per behaviour, expected values from Sprig v3 under Go.

use sluice_go_template::{MissingKey, Options, TemplateSet, Value};

fn data() -> Value {
    Value::from_json(&serde_json::json!({
        "Values": {
            "name": "demo", "port": 8080, "ratio": 1.5, "big": 1000000, "enabled": true, "off": false,
            "empty": "", "zero": 0, "list": ["b", "a", "c"], "nums": [3, 1, 2],
            "map": {"b": 2, "a": 1}, "nested": {"x": {"y": "deep"}}, "nothing": null,
            "text": "line1\nline2",
        }
    }))
}

#[track_caller]
fn check(template: &str, expected: &str) {
    let mut set = TemplateSet::new();
    set.set_options(Options { missing_key: MissingKey::Zero, ..Options::default() });
    let result = set.parse("t", template).and_then(|()| set.execute("t", &data()));
    match result {
        Ok(out) => assert_eq!(out, expected, "template {template:?}"),
        Err(err) => assert_eq!(format!("ERROR: {err}"), expected, "template {template:?}"),
    }
}

#[test]
fn strings() {
    check(
        r#"{{ upper "abc" }} {{ lower "ABC" }} {{ title "hello world-x" }} {{ untitle "Hello World" }}"#,
        "ABC abc Hello World-X hello world",
    );
    check(
        r#"{{ trim "  a  " }}|{{ trimAll "$" "$5.00$" }}|{{ trimPrefix "-" "-a" }}|{{ trimSuffix "-" "a-" }}"#,
        "a|5.00|a|a",
    );
    check(
        r#"{{ repeat 3 "ab" }} {{ substr 1 3 "hello" }} {{ nospace "a b  c" }}"#,
        "ababab el abc",
    );
    check(r#"{{ trunc 3 "hello" }} {{ trunc -3 "hello" }} {{ trunc 10 "hi" }}"#, "hel llo hi");
    check(r#"{{ abbrev 5 "hello world" }} {{ initials "First Try" }}"#, "he... FT");
    check(
        r#"{{ contains "ell" "hello" }} {{ hasPrefix "he" "hello" }} {{ hasSuffix "lo" "hello" }}"#,
        "true true true",
    );
    check(
        r#"{{ quote "a" 1 .Values.missing }} {{ squote "a" }} {{ quote "a\"b" }}"#,
        r#""a" "1" 'a' "a\"b""#,
    );
    check(r#"{{ cat "a" 1 nil "b" }}"#, "a 1 b");
    check(r#"{{ indent 2 .Values.text }}|{{ nindent 2 "x" }}"#, "  line1\n  line2|\n  x");
    check(
        r#"{{ replace "a" "b" "banana" }} {{ plural "one" "many" 2 }} {{ plural "one" "many" 1 }}"#,
        "bbnbnb many one",
    );
    check(
        r#"{{ snakecase "FirstName" }} {{ kebabcase "HTTPServer" }} {{ camelcase "http_server" }} {{ swapcase "aB" }}"#,
        "first_name http-server HttpServer Ab",
    );
    check(r#"{{ wrap 5 "hello world foo" }}"#, "hello\nworld\nfoo");
    check(r#"{{ toString 1.5 }} {{ toString .Values.big }} {{ toString nil }}"#, "1.5 1e+06 <nil>");
    check(r#"{{ join "," .Values.list }} {{ join "-" (list 1 2) }}"#, "b,a,c 1-2");
    check(
        r#"{{ sortAlpha .Values.list }} {{ splitList "," "a,b" }} {{ (split "," "a,b")._1 }}"#,
        "[a b c] [a b] b",
    );
    check(r#"{{ printf "%v" (splitn "," 2 "a,b,c") }}"#, "map[_0:a _1:b,c]");
    check(r#"{{ len (randAlphaNum 8) }} {{ regexMatch "^[a-z]+$" "abc" }}"#, "8 true");
    check(
        r#"{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }} {{ regexFind "[0-9]+" "ab123cd" }} {{ regexFindAll "[a-c]" "abcd" -1 }}"#,
        "-W-xxW- 123 [a b c]",
    );
    check(
        r#"{{ regexSplit "z+" "pizza" -1 }} {{ regexReplaceAllLiteral "a" "aa" "$1" }}"#,
        "[pi a] $1$1",
    );
}

#[test]
fn numbers() {
    check(
        r#"{{ add 1 2 3 }} {{ sub 5 2 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }} {{ add1 1 }}"#,
        "6 3 6 3 1 2",
    );
    check(
        r#"{{ max 1 5 3 }} {{ min 4 2 }} {{ floor 1.7 }} {{ ceil 1.2 }} {{ round 1.2345 2 }}"#,
        "5 2 1 2 1.23",
    );
    check(
        r#"{{ int 3.9 }} {{ int "12" }} {{ int64 "0x10" }} {{ float64 "1.5" }} {{ atoi "42" }} {{ int "bad" }}"#,
        "3 12 16 1.5 42 0",
    );
    check(
        r#"{{ add .Values.port 1 }} {{ int .Values.port }} {{ .Values.port | int }}"#,
        "8081 8080 8080",
    );
    check(
        r#"{{ addf 0.1 0.2 }} {{ mulf 1.5 2 }} {{ divf 1 4 }} {{ subf 1.5 0.5 }}"#,
        "0.3 3 0.25 1",
    );
    check(
        r#"{{ until 3 }} {{ untilStep 0 10 4 }} {{ seq 3 }} {{ seq 5 -2 1 }}"#,
        "[0 1 2] [0 4 8] 1 2 3 5 3 1",
    );
    check(
        r#"{{ div 1 0 }}"#,
        "ERROR: template: t:1:3: executing \"t\" at <div 1 0>: error calling div: runtime error: integer divide by zero",
    );
}

#[test]
fn defaults_and_types() {
    check(
        r#"{{ default "d" .Values.missing }} {{ default "d" .Values.empty }} {{ default "d" .Values.name }} {{ default 5 .Values.zero }}"#,
        "d d demo 5",
    );
    check(r#"{{ .Values.missing | default "x" }} {{ default "d" .Values.off }}"#, "x d");
    check(
        r#"{{ empty .Values.empty }} {{ empty .Values.list }} {{ coalesce .Values.empty .Values.zero "c" }}"#,
        "true false c",
    );
    check(
        r#"{{ all 1 "a" }} {{ any 0 "" }} {{ ternary "y" "n" true }} {{ true | ternary "y" "n" }}"#,
        "true false y y",
    );
    check(
        r#"{{ typeOf .Values.port }} {{ typeOf .Values.list }} {{ typeOf .Values.map }} {{ typeOf "s" }} {{ typeOf (len "a") }}"#,
        "float64 []interface {} map[string]interface {} string int",
    );
    check(
        r#"{{ kindOf .Values.map }} {{ kindOf .Values.list }} {{ kindIs "invalid" .Values.missing }} {{ kindIs "bool" true }}"#,
        "map slice true true",
    );
    check(
        r#"{{ typeIs "float64" .Values.ratio }} {{ deepEqual (list 1 2) (list 1 2) }}"#,
        "true true",
    );
    check(
        r#"{{ toJson .Values.map }} {{ toJson "<a>" }} {{ toRawJson "<a>" }} {{ toJson .Values.big }}"#,
        r#"{"a":1,"b":2} "\u003ca\u003e" "<a>" 1000000"#,
    );
    check(r#"{{ toPrettyJson (dict "a" 1) }}"#, "{\n  \"a\": 1\n}");
    check(r#"{{ (fromJson "{\"a\": [1, 2]}").a }} {{ fromJson "bad" }}"#, "[1 2] <no value>");
    check(
        r#"{{ b64enc "hello" }} {{ b64dec "aGVsbG8=" }} {{ b32enc "hi" }} {{ b32dec "NBUQ====" }}"#,
        "aGVsbG8= hello NBUQ==== hi",
    );
    check(
        r#"{{ sha256sum "abc" | trunc 8 }} {{ sha1sum "abc" | trunc 8 }} {{ adler32sum "abc" }}"#,
        "ba7816bf a9993e36 38600999",
    );
}

#[test]
fn lists() {
    check(
        r#"{{ list 1 "a" }} {{ first .Values.list }} {{ last .Values.list }} {{ rest .Values.list }} {{ initial .Values.list }}"#,
        "[1 a] b c [a c] [b a]",
    );
    check(
        r#"{{ append .Values.list "d" }} {{ prepend .Values.list "z" }} {{ concat (list 1) (list 2 3) }} {{ reverse .Values.list }}"#,
        "[b a c d] [z b a c] [1 2 3] [c a b]",
    );
    check(
        r#"{{ uniq (list 1 1 2) }} {{ without (list 1 2 3) 2 }} {{ has "a" .Values.list }} {{ compact (list 1 "" 0 "x") }}"#,
        "[1 2] [1 3] true [1 x]",
    );
    check(
        r#"{{ slice .Values.list 1 }} {{ slice .Values.list 0 2 }} {{ chunk 2 (list 1 2 3) }}"#,
        "[a c] [b a] [[1 2] [3]]",
    );
    check(r#"{{ first nil }}|{{ has 1 nil }}"#, "<no value>|false");
}

#[test]
fn dicts() {
    check(
        r#"{{ $d := dict "a" 1 "b" 2 }}{{ $d }} {{ get $d "a" }} {{ get $d "zz" }}|{{ hasKey $d "b" }}"#,
        "map[a:1 b:2] 1 |true",
    );
    check(
        r#"{{ $d := dict }}{{ $_ := set $d "k" "v" }}{{ $d.k }} {{ $_ := unset $d "k" }}{{ hasKey $d "k" }}"#,
        "v false",
    );
    check(
        r#"{{ pluck "a" (dict "a" 1) (dict "b" 2) (dict "a" 3) }} {{ keys (dict "b" 1 "a" 2) | sortAlpha }} {{ values (dict "a" 1) }}"#,
        "[1 3] [a b] [1]",
    );
    check(
        r#"{{ pick (dict "a" 1 "b" 2) "a" }} {{ omit (dict "a" 1 "b" 2) "a" }}"#,
        "map[a:1] map[b:2]",
    );
    check(
        r#"{{ dig "x" "y" "none" .Values.nested }} {{ dig "x" "z" "none" .Values.nested }}"#,
        "deep none",
    );
    check(
        r#"{{ merge (dict "a" 1 "n" (dict "x" 1)) (dict "a" 2 "b" 3 "n" (dict "y" 2)) }}"#,
        "map[a:1 b:3 n:map[x:1 y:2]]",
    );
    check(
        r#"{{ mergeOverwrite (dict "a" 1 "n" (dict "x" 1)) (dict "a" 2 "n" (dict "x" 5)) }}"#,
        "map[a:2 n:map[x:5]]",
    );
    check(r#"{{ merge (dict "a" false) (dict "a" true) }}"#, "map[a:true]");
    check(
        r#"{{ $c := deepCopy .Values.map }}{{ $_ := set $c "z" 1 }}{{ .Values.map }}"#,
        "map[a:1 b:2]",
    );
    check(r#"{{ $_ := set .Values "added" 1 }}{{ .Values.added }}"#, "1");
}

#[test]
fn semver_and_misc() {
    check(
        r#"{{ semverCompare ">=1.20.0-0" "v1.36.0" }} {{ semverCompare "<1.19" "1.20.3" }} {{ (semver "1.2.3-rc.1").Minor }}"#,
        "true false 2",
    );
    check(
        r#"{{ duration 90 }} {{ date "2006-01-02" 0 }} {{ dateInZone "2006-01-02 15:04" 3600 "UTC" }}"#,
        "1m30s 1970-01-01 1970-01-01 01:00",
    );
    check(
        r#"{{ (urlParse "https://u@host:8080/p?q=1#f").hostname }} {{ urlJoin (dict "scheme" "http" "host" "h" "path" "/x") }}"#,
        "host http://h/x",
    );
    check(
        r#"{{ base "/a/b.txt" }} {{ dir "/a/b.txt" }} {{ ext "b.tar.gz" }} {{ clean "a//b/../c" }}"#,
        "b.txt /a .gz a/c",
    );
    check(
        r#"{{ fail "boom" }}"#,
        "ERROR: template: t:1:3: executing \"t\" at <fail \"boom\">: error calling fail: boom",
    );
    check(r#"{{ len uuidv4 }}"#, "36");
    check(r#"{{ derivePassword 1 "long" "password" "user" "example.com" }}"#, "ZedaFaxcZaso9*");
}

#[test]
fn matches_helm_on_edge_cases() {
    // Expected values were produced by Helm v4.2.3 (Sprig v3.3, Go 1.24).
    check(
        r#"{{ upper "straße ǅ" }}|{{ lower "İSTANBUL" }}|{{ title "élan ǆx" }}"#,
        "STRAßE Ǆ|istanbul|Élan ǅx",
    );
    check(r#"{{ camelcase "foo-bar baz" }}|{{ camelcase "_a_b_" }}"#, "FooBarBaz|_AB_");
    check(
        r#"{{ int64 "1_000" }}|{{ int64 1e19 }}|{{ rest (list) }}|{{ initial (list) }}"#,
        "1000|-9223372036854775808|[]|[]",
    );
    check(
        r#"{{ semver "v2" }}|{{ semver "1.2.3-beta.1+build.5" | toJson }}|{{ (semver "v2").Major }}"#,
        r#"2.0.0|"1.2.3-beta.1+build.5"|2"#,
    );
    check(
        r#"{{ duration 3661 }}|{{ duration "95" }}|{{ duration .Values.ratio }}"#,
        "1h1m1s|1m35s|0s",
    );
    check(
        r#"{{ b64dec "aGVsbG8" }}|{{ js "< " }}"#,
        r#"illegal base64 data at input byte 4|\u003C\u2028"#,
    );
    check(
        r#"{{ substr 3 1 "hello" }}"#,
        "ERROR: template: t:1:3: executing \"t\" at <substr 3 1 \"hello\">: error calling substr: runtime error: slice bounds out of range [3:1]",
    );
    check(
        r#"{{ toDate "2006-01-02T15:04:05.999Z07:00" "2024-03-04T05:06:07.120Z" | date "2006.01.02 .000 .999 002" }}"#,
        "2024.03.04 .120 .12 064",
    );
}

#[test]
fn go_type_rules_for_arguments() {
    check(
        r#"{{ indent .Values.port "x" }}"#,
        "ERROR: template: t:1:17: executing \"t\" at <.Values.port>: wrong type for value; expected int; got float64",
    );
    check(
        r#"{{ upper 3 }}"#,
        "ERROR: template: t:1:9: executing \"t\" at <3>: expected string; found 3",
    );
    check(
        r#"{{ .Values.missing | upper }}"#,
        "ERROR: template: t:1:21: executing \"t\" at <upper>: invalid value; expected string",
    );
    check(
        r#"{{ upper }}"#,
        "ERROR: template: t:1:3: executing \"t\" at <upper>: wrong number of args for upper: want 1 got 0",
    );
}

#[test]
fn aes_interoperates_with_helm() {
    // Ciphertexts produced by Helm v4.2.3's `encryptAES`.
    check(
        r#"{{ decryptAES "pw-longer-than-32-bytes-xxxxxxxxxxxxxxxx" "mYTJZcjI0DCUSJYQGCE/eVfAFOqg1h+tXk/CQy2nzkbvGSnqzF3QE+cj3wopkNCWSoolaHKjihLQxlHk1xP9lQ==" }}"#,
        "hello world 1234 exactly16bytes!",
    );
    check(r#"{{ decryptAES "pw" "TDvgoCDYye87XX4mkkcmaQdmLfnPZavNp+GJyAVrGNg=" }}"#, "hi");
    check(
        r#"{{ encryptAES "k" "round trip" | decryptAES "k" }}|{{ encryptAES "k" "" }}"#,
        "round trip|",
    );
}

#[test]
fn nil_maps_and_zero_times_match_helm() {
    check(
        r#"{{ toDate "2006" "x" | date "2006" }}|{{ merge nil (dict "a" 1) }}|{{ hasKey nil "a" }}"#,
        "0001|map[a:1]|false",
    );
    check(
        r#"{{ set nil "a" 1 }}"#,
        "ERROR: template: t:1:3: executing \"t\" at <set nil \"a\" 1>: error calling set: assignment to entry in nil map",
    );
}

#[test]
fn htpasswd_is_bcrypt() {
    let mut set = TemplateSet::new();
    set.parse("t", r#"{{ htpasswd "alice" "pw" }}|{{ htpasswd "a:b" "pw" }}"#).unwrap();
    let out = set.execute("t", &Value::Nil).unwrap();
    let (entry, invalid) = out.split_once('|').unwrap();
    assert!(entry.starts_with("alice:$2a$10$") && entry.len() == "alice:".len() + 60, "{entry}");
    assert_eq!(invalid, "invalid username: a:b");
}
