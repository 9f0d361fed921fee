//! Generate `src/builtin_schema.json` from a Kubernetes `api/openapi-spec/swagger.json`.
//!
//! Usage: `cargo run -p sluice-smp --example gen_schema -- SWAGGER_JSON VERSION [OUT]`
//! (OUT defaults to `shared/smp/src/builtin_schema.json`).
//!
//! The committed table comes from Debian bookworm's `kubernetes` source package (1.20.2), whose
//! `kubernetes_*.orig.tar.gz` holds `api/openapi-spec/swagger.json`: with a deb-src line for
//! bookworm, `apt-get source --download-only kubernetes`, then
//! `tar xzf kubernetes_*.orig.tar.gz --wildcards '*/api/openapi-spec/swagger.json'`, then
//! `cargo run -p sluice-smp --example gen_schema -- kubernetes-1.20.2/api/openapi-spec/swagger.json 1.20.2`.

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
    let mut schema = sluice_smp::Schema::from_openapi(&doc)?;
    // kustomize v5.5.0 embeds the 1.21.2 spec, where these kinds went GA with the patch
    // metadata of their beta versions; Debian's 1.20.2 spec only has the betas.
    for (api_version, kind, beta) in [
        ("batch/v1", "CronJob", "batch/v1beta1"),
        ("policy/v1", "PodDisruptionBudget", "policy/v1beta1"),
        ("policy/v1", "Eviction", "policy/v1beta1"),
        ("discovery.k8s.io/v1", "EndpointSlice", "discovery.k8s.io/v1beta1"),
    ] {
        if !schema.knows_kind(api_version, kind) && !schema.alias_kind(api_version, kind, beta) {
            anyhow::bail!("{beta} {kind} not in {input}; cannot alias {api_version}");
        }
    }
    let schema = schema.pruned().with_version(&version);
    let mut json = serde_json::to_string_pretty(&schema)?;
    json.push('\n');
    std::fs::write(&out, json).with_context(|| format!("writing {out}"))?;
    eprintln!("wrote {out}");
    Ok(())
}
