//! Generate `src/builtin_schema.json` from a Kubernetes `api/openapi-spec/swagger.json`.
//!
//! Usage: `cargo run -p sluice-smp --example gen_schema -- SWAGGER_JSON VERSION [OUT]`
//! (OUT defaults to `shared/smp/src/builtin_schema.json`). See the crate's `schema` module docs
//! for where the swagger file comes from.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(version)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: gen_schema SWAGGER_JSON VERSION [OUT]");
    };
    let out = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/src/builtin_schema.json").to_owned()
    });
    let text = std::fs::read_to_string(&input).with_context(|| format!("reading {input}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {input}"))?;
    let schema = sluice_smp::Schema::from_openapi(&doc)?.pruned().with_version(&version);
    let mut json = serde_json::to_string_pretty(&schema)?;
    json.push('\n');
    std::fs::write(&out, json).with_context(|| format!("writing {out}"))?;
    eprintln!("wrote {out}");
    Ok(())
}
