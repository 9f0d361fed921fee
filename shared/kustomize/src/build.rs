//! The build pipeline: load a kustomization tree, accumulate resources, run generators and
//! transformers in kustomize's order, then fix name references, vars and output order.
//!
//! Follows `kubernetes-sigs/kustomize:api/internal/target/kusttarget.go` (v5.5.0).

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::TransformerConfig;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, normalize};
use crate::generators::{self, KvLoader};
use crate::resource::{Behavior, ORDER_FIRST, ORDER_LAST, ResId, Resource, legacy_sort};
use crate::transformers::{self, SmPatch, SubjectMode};
use crate::types::{FieldSpec, Gvk, Kustomization, Patch, Replacement, Selector, Var};
use crate::{nameref, yaml};

const KUSTOMIZATION_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];
const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";
const TRANSFORMER_ANNOTATION: &str = "alpha.config.kubernetes.io/transformations";

/// Options of a build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Nothing may be loaded from outside this directory (default: the directory being built).
    pub root: Option<PathBuf>,
}

/// Builds the kustomization in `dir`, reading through `fs`; nothing outside `dir` may be loaded.
///
/// # Errors
/// Any load, parse or transformation failure, naming the kustomization file, resource and field.
pub fn build(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>> {
    build_with_options(fs, dir, &BuildOptions::default())
}

/// Builds the kustomization in `dir` with options (e.g. a wider load root for bases in `../`).
///
/// # Errors
/// See [`build`].
pub fn build_with_options(
    fs: &dyn FileSystem,
    dir: &Path,
    options: &BuildOptions,
) -> Result<Vec<Value>> {
    let dir = normalize(dir);
    let root = options.root.as_deref().map(normalize).unwrap_or_else(|| dir.clone());
    if !is_within(&dir, &root) {
        return Err(Error::OutsideRoot { path: dir, root });
    }
    let builder = Builder {
        fs,
        root,
        schema: std::cell::RefCell::new(None),
        schema_set: std::cell::Cell::new(false),
    };
    builder.build_top(&dir)
}

fn is_within(path: &Path, root: &Path) -> bool {
    path.starts_with(root)
        && !path.components().any(|c| {
            c == Component::ParentDir && !root.components().any(|r| r == Component::ParentDir)
        })
}

struct Builder<'a> {
    fs: &'a dyn FileSystem,
    root: PathBuf,
    schema: std::cell::RefCell<Option<sluice_smp::Schema>>,
    schema_set: std::cell::Cell<bool>,
}

/// Resources plus the config and vars gathered with them.
#[derive(Default)]
struct Accumulator {
    resources: Vec<Resource>,
    config: TransformerConfig,
    vars: Vec<Var>,
}

/// One kustomization being built.
struct Target {
    dir: PathBuf,
    file: PathBuf,
    kustomization: Kustomization,
    /// Path from the top kustomization's directory, when origins are tracked.
    origin: Option<String>,
    track_transformers: bool,
}

impl Target {
    fn ctx(&self) -> String {
        self.file.display().to_string()
    }
}

struct TargetLoader<'a> {
    fs: &'a dyn FileSystem,
    dir: &'a Path,
}

impl KvLoader for TargetLoader<'_> {
    fn load(&self, path: &str) -> std::result::Result<Vec<u8>, String> {
        let p = normalize(&self.dir.join(path));
        if !is_within(&p, self.dir) {
            return Err(Error::OutsideRoot { path: p, root: self.dir.to_path_buf() }.to_string());
        }
        self.fs.read(&p).map_err(|e| format!("reading '{}': {e}", p.display()))
    }
}

fn is_remote(path: &str) -> bool {
    path.contains("://")
        || path.starts_with("git@")
        || path.starts_with("github.com/")
        || path.starts_with("gitlab.com/")
        || path.starts_with("bitbucket.org/")
}

fn join_origin(base: &str, path: &str) -> String {
    if base.is_empty() {
        normalize(Path::new(path)).display().to_string()
    } else {
        normalize(&Path::new(base).join(path)).display().to_string()
    }
}

fn origin_yaml(
    path: Option<&str>,
    configured_in: Option<&str>,
    configured_by: Option<(&str, &str, &str)>,
) -> String {
    let mut m = Map::new();
    if let Some(p) = path {
        m.insert("path".into(), Value::String(p.into()));
    }
    if let Some(c) = configured_in {
        m.insert("configuredIn".into(), Value::String(c.into()));
    }
    if let Some((api, kind, name)) = configured_by {
        let mut by = Map::new();
        by.insert("apiVersion".into(), Value::String(api.into()));
        by.insert("kind".into(), Value::String(kind.into()));
        if !name.is_empty() {
            by.insert("name".into(), Value::String(name.into()));
        }
        m.insert("configuredBy".into(), Value::Object(by));
    }
    // kustomize writes these keys in struct order: path, repo, ref, configuredIn, configuredBy.
    let mut out = String::new();
    for key in ["path", "configuredIn", "configuredBy"] {
        if let Some(v) = m.get(key) {
            let mut one = Map::new();
            one.insert(key.to_string(), v.clone());
            out.push_str(&yaml::to_yaml_document(&Value::Object(one)));
        }
    }
    out
}

impl<'a> Builder<'a> {
    fn schema(&self) -> sluice_smp::Schema {
        self.schema.borrow().clone().unwrap_or_else(|| sluice_smp::Schema::builtin().clone())
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>> {
        self.fs.read(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })
    }

    fn read_text(&self, path: &Path) -> Result<String> {
        let bytes = self.read(path)?;
        String::from_utf8(bytes).map_err(|_| Error::Yaml {
            path: path.to_path_buf(),
            message: "not valid UTF-8".into(),
        })
    }

    /// Resolves a file path of a kustomization: it must stay in the kustomization's directory.
    fn file_in(&self, target: &Target, rel: &str) -> Result<PathBuf> {
        let p = normalize(&target.dir.join(rel));
        if !is_within(&p, &target.dir) {
            return Err(Error::OutsideRoot { path: p, root: target.dir.clone() });
        }
        Ok(p)
    }

    fn load_target(
        &self,
        dir: &Path,
        origin: Option<String>,
        track_transformers: bool,
    ) -> Result<Target> {
        let mut found = Vec::new();
        for name in KUSTOMIZATION_FILES {
            let p = dir.join(name);
            if self.fs.is_file(&p) {
                found.push(p);
            }
        }
        let file = match found.len() {
            0 => return Err(Error::MissingKustomization { dir: dir.to_path_buf() }),
            1 => found.remove(0),
            _ => return Err(Error::MultipleKustomizations { dir: dir.to_path_buf() }),
        };
        let text = self.read_text(&file)?;
        let docs = yaml::parse_documents_lenient(&text)
            .map_err(|message| Error::Yaml { path: file.clone(), message })?;
        let Some(first) = docs.into_iter().next() else {
            return Err(Error::InvalidKustomization {
                path: file.clone(),
                message: "kustomization.yaml is empty".into(),
            });
        };
        if !first.is_object() {
            return Err(Error::InvalidKustomization {
                path: file.clone(),
                message: "expected a map of kustomization fields".into(),
            });
        }
        let value = canonical_field_names(first);
        let mut kustomization: Kustomization = serde_json::from_value(value).map_err(|e| {
            Error::InvalidKustomization { path: file.clone(), message: e.to_string() }
        })?;
        fix_legacy(&mut kustomization);
        if !kustomization.helm_charts.is_empty()
            || !kustomization.helm_chart_inflation_generator.is_empty()
        {
            return Err(Error::InvalidKustomization {
                path: file,
                message: "helmCharts are not supported: render charts with a HelmRelease".into(),
            });
        }
        Ok(Target { dir: dir.to_path_buf(), file, kustomization, origin, track_transformers })
    }

    fn build_top(&self, dir: &Path) -> Result<Vec<Value>> {
        let target = self.load_target(dir, None, false)?;
        let build_metadata = target.kustomization.build_metadata.clone();
        let origins = build_metadata.iter().any(|b| b == "originAnnotations");
        let transformations = build_metadata.iter().any(|b| b == "transformerAnnotations");
        for b in &build_metadata {
            if !matches!(
                b.as_str(),
                "originAnnotations" | "transformerAnnotations" | "managedByLabel"
            ) {
                return Err(Error::InvalidKustomization {
                    path: target.file.clone(),
                    message: format!("invalid buildMetadata option: {b}"),
                });
            }
        }
        self.set_openapi(&target)?;
        let target = Target {
            origin: if origins || transformations { Some(String::new()) } else { None },
            track_transformers: transformations,
            ..target
        };
        let mut stack = vec![dir.to_path_buf()];
        let mut ra = self.accumulate_target(&target, Accumulator::default(), &mut stack)?;
        // Hashes, name references and vars are resolved once, for the whole tree.
        for r in &mut ra.resources {
            if r.needs_hash {
                let hash = generators::hash_object(&r.obj);
                r.store_previous_id();
                let name = format!("{}-{}", r.name(), hash);
                r.set_name(&name);
            }
        }
        nameref::fix_back_references(&mut ra.resources, &ra.config.name_reference)?;
        crate::vars::resolve(&mut ra.resources, &ra.vars, &ra.config.var_reference)?;
        ra.resources.retain(|r| {
            r.annotations().get("config.kubernetes.io/local-config").and_then(Value::as_str)
                != Some("true")
        });
        let sort = target.kustomization.sort_options.clone();
        match sort {
            Some(so) => match so.order.as_str() {
                "legacy" => {
                    let (first, last) = match &so.legacy_sort_options {
                        Some(l) => (l.order_first.clone(), l.order_last.clone()),
                        None => default_orders(),
                    };
                    legacy_sort(&mut ra.resources, &first, &last);
                }
                "fifo" => {
                    if so.legacy_sort_options.is_some() {
                        return Err(Error::build(
                            target.ctx(),
                            "the field 'sortOptions.legacySortOptions' is set but the selected sort order is 'fifo', not 'legacy'",
                        ));
                    }
                }
                _ => {
                    return Err(Error::build(
                        target.ctx(),
                        "the field 'sortOptions.order' must be one of [fifo, legacy]",
                    ));
                }
            },
            None => {
                let (first, last) = default_orders();
                legacy_sort(&mut ra.resources, &first, &last);
            }
        }
        // The reference, kustomize as built into kubectl, reports its version as "(devel)".
        if build_metadata.iter().any(|b| b == "managedByLabel") {
            let fs =
                [FieldSpec { gvk: Gvk::default(), path: "metadata/labels".into(), create: true }];
            transformers::set_map_entries(
                &mut ra.resources,
                &[("app.kubernetes.io/managed-by".into(), "kustomize-(devel)".into())],
                &fs,
            )
            .map_err(|e| Error::build(target.ctx(), e))?;
        }
        let mut out = Vec::with_capacity(ra.resources.len());
        for mut r in ra.resources {
            // kustomize rewrites annotations as strings when it drops its build annotations.
            stringify_annotations(&mut r.obj);
            if !origins {
                r.remove_annotation(ORIGIN_ANNOTATION);
            }
            if !transformations {
                r.remove_annotation(TRANSFORMER_ANNOTATION);
            } else if !r.transformations.is_empty() {
                let text = r.transformations.concat();
                r.set_annotation(TRANSFORMER_ANNOTATION, &text);
            }
            out.push(r.obj);
        }
        Ok(out)
    }

    /// Applies a kustomization's `openapi:`; the first schema set (the top kustomization's) wins.
    fn set_openapi(&self, target: &Target) -> Result<()> {
        let openapi = &target.kustomization.openapi;
        let version = openapi.get("version").filter(|v| !v.is_empty());
        if let Some(path) = openapi.get("path") {
            let p = self.file_in(target, path)?;
            let text = self.read_text(&p)?;
            if self.schema_set.get() {
                return Ok(());
            }
            if version.is_some() {
                return Err(Error::build(
                    target.ctx(),
                    "builtin version and custom schema provided, cannot use both",
                ));
            }
            let doc = yaml::parse_documents(&text)
                .map_err(|message| Error::Yaml { path: p.clone(), message })?
                .into_iter()
                .next()
                .unwrap_or(Value::Null);
            let schema = sluice_smp::Schema::builtin().extended(&doc).map_err(|e| {
                Error::build(format!("openapi schema '{}'", p.display()), e.to_string())
            })?;
            *self.schema.borrow_mut() = Some(schema);
            self.schema_set.set(true);
        } else if let Some(version) = version {
            if self.schema_set.get() {
                return Ok(());
            }
            if version != "v1.21.2" {
                return Err(Error::build(
                    target.ctx(),
                    "the specified OpenAPI version is not built in",
                ));
            }
            *self.schema.borrow_mut() = None;
            self.schema_set.set(true);
        }
        Ok(())
    }

    fn accumulate_target(
        &self,
        target: &Target,
        ra: Accumulator,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Accumulator> {
        let mut ra = ra;
        let mut resources = target.kustomization.resources.clone();
        resources.extend(target.kustomization.bases.iter().cloned());
        self.accumulate_resources(target, &mut ra, &resources, stack)
            .map_err(|e| e.context("accumulating resources"))?;
        let mut config = TransformerConfig::defaults().clone();
        for c in &target.kustomization.configurations {
            let p = self.file_in(target, c)?;
            let text = self.read_text(&p)?;
            for doc in yaml::parse_documents(&text)
                .map_err(|message| Error::Yaml { path: p.clone(), message })?
            {
                let tc = TransformerConfig::from_value(doc).map_err(|e| {
                    Error::build(format!("{}: configurations '{}'", target.ctx(), c), e)
                })?;
                config.merge(&tc).map_err(|e| Error::build(target.ctx(), e))?;
            }
        }
        for crd in &target.kustomization.crds {
            let p = self.file_in(target, crd)?;
            let text = self.read_text(&p)?;
            let doc = yaml::parse_documents_lenient(&text)
                .map_err(|message| Error::Yaml { path: p.clone(), message })?
                .into_iter()
                .next()
                .unwrap_or(Value::Null);
            let tc = TransformerConfig::from_crd_definitions(&doc).map_err(|e| {
                Error::build(
                    format!("loading CRDs: unable to parse open API definition from '{crd}'"),
                    e,
                )
            })?;
            config.merge(&tc).map_err(|e| Error::build(target.ctx(), e))?;
        }
        ra.config.merge(&config).map_err(|e| Error::build(target.ctx(), e))?;
        self.run_generators(target, &mut ra, stack)?;
        for comp in &target.kustomization.components {
            ra = self
                .accumulate_component(target, ra, comp, stack)
                .map_err(|e| e.context("accumulating components"))?;
        }
        self.run_transformers(target, &mut ra, stack)?;
        // No builtin validators exist and plugins cannot run, as in kustomize without plugins enabled.
        if let Some((config, _)) =
            self.plugin_configs(target, &target.kustomization.validators, stack)?.into_iter().next()
        {
            require_builtin(&config).map_err(|e| Error::build(target.ctx(), e))?;
            let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
            return Err(Error::build(
                target.ctx(),
                format!("unable to load builtin validator {kind}"),
            ));
        }
        self.merge_vars(target, &mut ra)?;
        Ok(ra)
    }

    fn sub_dir(&self, target: &Target, rel: &str) -> Result<PathBuf> {
        let p = normalize(&target.dir.join(rel));
        if !is_within(&p, &self.root) {
            return Err(Error::OutsideRoot { path: p, root: self.root.clone() });
        }
        Ok(p)
    }

    fn accumulate_component(
        &self,
        target: &Target,
        ra: Accumulator,
        rel: &str,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Accumulator> {
        if is_remote(rel) {
            return Err(Error::Remote { kustomization: target.file.clone(), url: rel.to_string() });
        }
        let dir = self.sub_dir(target, rel)?;
        if !self.fs.is_dir(&dir) {
            return Err(Error::build(
                format!("loader.New \"must build at directory: '{}'", dir.display()),
                "file is not directory\"",
            ));
        }
        let sub = self.load_target(
            &dir,
            target.origin.as_ref().map(|o| join_origin(o, rel)),
            target.track_transformers,
        )?;
        if !sub.kustomization.is_component() {
            return Err(Error::build(
                "accumulateDirectory",
                format!(
                    "expected kind 'Component' for path '{}' but got '{}'",
                    dir.display(),
                    kind_or_default(&sub)
                ),
            ));
        }
        self.set_openapi(&sub)?;
        if stack.contains(&dir) {
            return Err(Error::build(
                sub.ctx(),
                format!("cycle detected: '{}' includes itself", dir.display()),
            ));
        }
        stack.push(dir.clone());
        let out = self
            .accumulate_target(&sub, ra, stack)
            .map_err(|e| e.context(format!("recursed accumulation of path '{}'", dir.display())));
        stack.pop();
        out
    }

    fn accumulate_resources(
        &self,
        target: &Target,
        ra: &mut Accumulator,
        paths: &[String],
        stack: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let mut index = IdIndex::of(&ra.resources);
        for rel in paths {
            if is_remote(rel) {
                return Err(Error::Remote { kustomization: target.file.clone(), url: rel.clone() });
            }
            let p = normalize(&target.dir.join(rel));
            if self.fs.is_file(&p) {
                let p = self.file_in(target, rel)?;
                let mut resources = self.resources_from_file(&p)?;
                if let Some(origin) = &target.origin {
                    let anno = origin_yaml(Some(&join_origin(origin, rel)), None, None);
                    for r in &mut resources {
                        r.set_annotation(ORIGIN_ANNOTATION, &anno);
                    }
                }
                for r in resources {
                    append(&mut ra.resources, &mut index, r)
                        .map_err(|e| e.context(format!("merging resources from '{rel}'")))?;
                }
                continue;
            }
            let dir = self.sub_dir(target, rel)?;
            if !self.fs.is_dir(&dir) {
                return Err(Error::build(
                    format!("accumulation err='accumulating resources from '{rel}'"),
                    format!(
                        "'{}' does not exist: must be a file or a directory with a kustomization",
                        p.display()
                    ),
                ));
            }
            let sub = self
                .load_target(
                    &dir,
                    target.origin.as_ref().map(|o| join_origin(o, rel)),
                    target.track_transformers,
                )
                .map_err(|e| {
                    e.context(format!("couldn't make target for path '{}'", dir.display()))
                })?;
            if sub.kustomization.is_component() {
                return Err(Error::build(
                    format!("accumulating resources from '{rel}'"),
                    format!("expected kind != 'Component' for path '{}'", dir.display()),
                ));
            }
            if stack.contains(&dir) {
                return Err(Error::build(
                    sub.ctx(),
                    format!("cycle detected: '{}' includes itself", dir.display()),
                ));
            }
            self.set_openapi(&sub)?;
            stack.push(dir.clone());
            let sub_ra = self.accumulate_target(&sub, Accumulator::default(), stack).map_err(|e| {
                e.context(format!("recursed accumulation of path '{}'", dir.display()))
            });
            stack.pop();
            let sub_ra = sub_ra?;
            merge_accumulator(ra, sub_ra).map_err(|e| {
                e.context(format!("recursed merging from path '{}'", dir.display()))
            })?;
            index = IdIndex::of(&ra.resources);
        }
        Ok(())
    }

    fn resources_from_file(&self, path: &Path) -> Result<Vec<Resource>> {
        let text = self.read_text(path)?;
        resources_from_text(&text)
            .map_err(|message| Error::Yaml { path: path.to_path_buf(), message })
    }

    fn run_generators(
        &self,
        target: &Target,
        ra: &mut Accumulator,
        stack: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let k = &target.kustomization;
        let loader = TargetLoader { fs: self.fs, dir: &target.dir };
        let mut generated: Vec<(Resource, &'static str)> = Vec::new();
        for (args_list, is_secret, kind) in [
            (&k.config_map_generator, false, "ConfigMapGenerator"),
            (&k.secret_generator, true, "SecretGenerator"),
        ] {
            for args in args_list.iter() {
                let options =
                    generators::merge_options(args.options.as_ref(), k.generator_options.as_ref());
                let r = make_generated(args, &options, is_secret, &loader).map_err(|e| {
                    Error::build(format!("{}: {kind} '{}'", target.ctx(), args.name), e)
                })?;
                generated.push((r, kind));
            }
        }
        let configured_in =
            target.origin.as_ref().map(|o| join_origin(o, &file_name(&target.file)));
        for (mut r, kind) in generated {
            if let Some(ci) = &configured_in {
                r.set_annotation(
                    ORIGIN_ANNOTATION,
                    &origin_yaml(None, Some(ci), Some(("builtin", kind, ""))),
                );
            }
            absorb(&mut ra.resources, r).map_err(|e| Error::build(target.ctx(), e))?;
        }
        // Generator plugins (`generators:`): builtin generator configurations.
        let configs = self.plugin_configs(target, &k.generators, stack)?;
        for (config, origin) in configs {
            let kind = config.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
            require_builtin(&config).map_err(|e| Error::build(target.ctx(), e))?;
            let is_secret = match kind.as_str() {
                "ConfigMapGenerator" => false,
                "SecretGenerator" => true,
                "IAMPolicyGenerator" => {
                    let mut r = Resource::new(
                        iam_policy_service_account(&config)
                            .map_err(|e| Error::build(target.ctx(), e))?,
                    );
                    if let Some(ci) = origin {
                        r.set_annotation(ORIGIN_ANNOTATION, &origin_for_plugin(&config, &ci));
                    }
                    absorb(&mut ra.resources, r).map_err(|e| Error::build(target.ctx(), e))?;
                    continue;
                }
                other => {
                    return Err(Error::build(
                        target.ctx(),
                        format!(
                            "generator kind '{other}' is not supported: only builtin ConfigMapGenerator and SecretGenerator"
                        ),
                    ));
                }
            };
            let mut args: crate::types::GeneratorArgs =
                serde_json::from_value(strip_plugin_fields(&config))
                    .map_err(|e| Error::build(target.ctx(), format!("{kind}: {e}")))?;
            if args.name.is_empty() {
                args.name = crate::resource::str_at(&config, &["metadata", "name"]).to_string();
            }
            if args.namespace.is_empty() {
                args.namespace =
                    crate::resource::str_at(&config, &["metadata", "namespace"]).to_string();
            }
            let options = generators::merge_options(args.options.as_ref(), None);
            let mut r = make_generated(&args, &options, is_secret, &loader)
                .map_err(|e| Error::build(target.ctx(), e))?;
            if let Some(o) = origin {
                r.set_annotation(ORIGIN_ANNOTATION, &origin_for_plugin(&config, &o));
            }
            absorb(&mut ra.resources, r).map_err(|e| Error::build(target.ctx(), e))?;
        }
        Ok(())
    }

    /// Loads plugin configurations: inline YAML, files, or directories built as kustomizations.
    fn plugin_configs(
        &self,
        target: &Target,
        entries: &[String],
        stack: &mut Vec<PathBuf>,
    ) -> Result<Vec<(Value, Option<String>)>> {
        let mut out = Vec::new();
        for entry in entries {
            if let Ok(docs) = yaml::parse_documents(entry)
                && !docs.is_empty()
                && docs.iter().all(Value::is_object)
            {
                for d in docs {
                    let origin =
                        target.origin.as_ref().map(|o| join_origin(o, &file_name(&target.file)));
                    out.push((d, origin));
                }
                continue;
            }
            if is_remote(entry) {
                return Err(Error::Remote {
                    kustomization: target.file.clone(),
                    url: entry.clone(),
                });
            }
            let p = normalize(&target.dir.join(entry));
            if self.fs.is_file(&p) {
                let p = self.file_in(target, entry)?;
                for r in self.resources_from_file(&p)? {
                    let origin = target.origin.as_ref().map(|o| join_origin(o, entry));
                    out.push((r.obj, origin));
                }
                continue;
            }
            let dir = self.sub_dir(target, entry)?;
            let sub = self.load_target(
                &dir,
                target.origin.as_ref().map(|o| join_origin(o, entry)),
                target.track_transformers,
            )?;
            stack.push(dir.clone());
            let sub_ra = self.accumulate_target(&sub, Accumulator::default(), stack);
            stack.pop();
            for r in sub_ra?.resources {
                let origin =
                    r.annotations().get(ORIGIN_ANNOTATION).and_then(Value::as_str).map(|s| {
                        yaml::parse_documents(s)
                            .ok()
                            .and_then(|d| d.into_iter().next())
                            .and_then(|v| v.get("path").and_then(Value::as_str).map(str::to_string))
                            .unwrap_or_default()
                    });
                let mut obj = r.obj;
                if let Some(m) =
                    obj.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut)
                {
                    m.remove(ORIGIN_ANNOTATION);
                }
                out.push((obj, origin));
            }
        }
        Ok(out)
    }

    fn run_transformers(
        &self,
        target: &Target,
        ra: &mut Accumulator,
        stack: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let k = &target.kustomization;
        let ctx = target.ctx();
        let tc = ra.config.clone();
        let schema = self.schema();
        let err = |e: String| Error::build(ctx.clone(), e);
        // patchesStrategicMerge
        if !k.patches_strategic_merge.is_empty() {
            let mut patches = Vec::new();
            for entry in &k.patches_strategic_merge {
                patches.extend(self.load_sm_patches(target, entry, false, false)?);
            }
            if patches.is_empty() {
                return Err(err(format!(
                    "trouble configuring builtin PatchStrategicMergeTransformer: patch appears to be empty; files={:?}",
                    k.patches_strategic_merge
                )));
            }
            for patch in &patches {
                apply_sm_patch_by_id(&mut ra.resources, patch, &schema).map_err(err)?;
            }
            note_builtin(target, &mut ra.resources, "PatchStrategicMergeTransformer");
        }
        for patch in &k.patches {
            self.apply_patch(target, &mut ra.resources, patch, &schema)?;
            note_builtin(target, &mut ra.resources, "PatchTransformer");
        }
        if !k.namespace.is_empty() {
            transformers::set_namespace(
                &mut ra.resources,
                &k.namespace,
                &tc.namespace,
                false,
                SubjectMode::DefaultOnly,
            )
            .map_err(err)?;
            note_builtin(target, &mut ra.resources, "NamespaceTransformer");
        }
        if !k.name_prefix.is_empty() {
            transformers::add_name_affix(&mut ra.resources, &k.name_prefix, true, &tc.name_prefix)
                .map_err(err)?;
            note_builtin(target, &mut ra.resources, "PrefixTransformer");
        }
        if !k.name_suffix.is_empty() {
            transformers::add_name_affix(&mut ra.resources, &k.name_suffix, false, &tc.name_suffix)
                .map_err(err)?;
            note_builtin(target, &mut ra.resources, "SuffixTransformer");
        }
        for label in &k.labels {
            let mut fss = label.fields.clone();
            let merge =
                |fss: &mut Vec<FieldSpec>, more: &[FieldSpec]| crate::config::merge_all(fss, more);
            merge(&mut fss, &tc.labels).map_err(err)?;
            if label.include_selectors {
                merge(&mut fss, &tc.common_labels).map_err(err)?;
            } else {
                if label.include_templates {
                    merge(&mut fss, &tc.template_labels).map_err(err)?;
                }
                crate::config::merge_one(
                    &mut fss,
                    FieldSpec { gvk: Gvk::default(), path: "metadata/labels".into(), create: true },
                )
                .map_err(err)?;
            }
            let entries: Vec<(String, String)> =
                label.pairs.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
            transformers::set_map_entries(&mut ra.resources, &entries, &fss).map_err(err)?;
            note_builtin(target, &mut ra.resources, "LabelTransformer");
        }
        if !k.common_labels.is_empty() || !k.labels.is_empty() {
            let entries: Vec<(String, String)> =
                k.common_labels.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
            transformers::set_map_entries(&mut ra.resources, &entries, &tc.common_labels)
                .map_err(err)?;
            note_builtin(target, &mut ra.resources, "LabelTransformer");
        }
        if !k.common_annotations.is_empty() {
            let entries: Vec<(String, String)> =
                k.common_annotations.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
            transformers::set_map_entries(&mut ra.resources, &entries, &tc.common_annotations)
                .map_err(err)?;
            note_builtin(target, &mut ra.resources, "AnnotationsTransformer");
        }
        for patch in &k.patches_json6902 {
            let Some(sel) = &patch.target else {
                return Err(err("patchesJson6902 entries must specify a target".into()));
            };
            let text = if !patch.path.is_empty() {
                let p = self.file_in(target, &patch.path)?;
                self.read_text(&p)?
            } else {
                patch.patch.clone()
            };
            let jp = transformers::decode_json_patch(&text)
                .map_err(|e| err(format!("patchesJson6902: {e}")))?;
            self.apply_json_patch_to_selected(&mut ra.resources, sel, &jp).map_err(err)?;
            note_builtin(target, &mut ra.resources, "PatchJson6902Transformer");
        }
        for replica in &k.replicas {
            transformers::set_replicas(&mut ra.resources, replica, &tc.replicas).map_err(err)?;
            note_builtin(target, &mut ra.resources, "ReplicaCountTransformer");
        }
        let mut images = k.images.clone();
        images.extend(k.image_tags.iter().cloned());
        for image in &images {
            transformers::set_image(&mut ra.resources, image, &tc.images).map_err(err)?;
            note_builtin(target, &mut ra.resources, "ImageTagTransformer");
        }
        if !k.replacements.is_empty() {
            let mut reps: Vec<Replacement> = Vec::new();
            for rf in &k.replacements {
                if !rf.path.is_empty() {
                    let p = self.file_in(target, &rf.path)?;
                    let text = self.read_text(&p)?;
                    for doc in yaml::parse_documents(&text)
                        .map_err(|message| Error::Yaml { path: p.clone(), message })?
                    {
                        let items = match doc {
                            Value::Array(items) => items,
                            other => vec![other],
                        };
                        for item in items {
                            reps.push(serde_json::from_value(item).map_err(|e| {
                                err(format!("replacements file '{}': {e}", rf.path))
                            })?);
                        }
                    }
                } else {
                    reps.push(rf.replacement.clone());
                }
            }
            transformers::apply_replacements(&mut ra.resources, &reps).map_err(err)?;
            note_builtin(target, &mut ra.resources, "ReplacementTransformer");
        }
        let configs = self.plugin_configs(target, &k.transformers, stack)?;
        for (config, configured_in) in configs {
            self.run_plugin_transformer(target, ra, &config, &schema)?;
            if let Some(ci) = configured_in {
                let by = |f: &[&str]| crate::resource::str_at(&config, f).to_string();
                let t = Transformation {
                    configured_in: ci,
                    api_version: by(&["apiVersion"]),
                    kind: by(&["kind"]),
                    name: by(&["metadata", "name"]),
                    namespace: by(&["metadata", "namespace"]),
                };
                note(&mut ra.resources, &t);
            }
        }
        Ok(())
    }

    fn load_sm_patches(
        &self,
        target: &Target,
        entry: &str,
        allow_name: bool,
        allow_kind: bool,
    ) -> Result<Vec<SmPatch>> {
        let docs = match resources_from_text(entry) {
            Ok(rs) if !rs.is_empty() => rs.into_iter().map(|r| r.obj).collect(),
            _ => {
                let p = self.file_in(target, entry)?;
                let text = self.read_text(&p)?;
                let mut out = Vec::new();
                for r in resources_from_text(&text)
                    .map_err(|message| Error::Yaml { path: p.clone(), message })?
                {
                    out.push(r.obj);
                }
                out
            }
        };
        Ok(docs
            .into_iter()
            .map(|patch| SmPatch {
                patch,
                allow_name_change: allow_name,
                allow_kind_change: allow_kind,
            })
            .collect())
    }

    fn apply_patch(
        &self,
        target: &Target,
        resources: &mut Vec<Resource>,
        patch: &Patch,
        schema: &sluice_smp::Schema,
    ) -> Result<()> {
        let ctx = target.ctx();
        let err = |e: String| Error::build(ctx.clone(), e);
        let (text, source) = match (patch.patch.trim(), patch.path.as_str()) {
            ("", "") => return Err(err("must specify one of patch and path in patches".into())),
            (p, path) if !p.is_empty() && !path.is_empty() => {
                return Err(err("patch and path can't be set at the same time".into()));
            }
            (p, "") => (p.to_string(), format!("[patch: {p:?}]")),
            (_, path) => {
                let p = self.file_in(target, path)?;
                (
                    self.read_text(&p).map_err(|e| {
                        e.context(format!("failed to get the patch file from path({path})"))
                    })?,
                    format!("[path: {path:?}]"),
                )
            }
        };
        let allow_name = patch.options.get("allowNameChange").copied().unwrap_or(false);
        let allow_kind = patch.options.get("allowKindChange").copied().unwrap_or(false);
        let trimmed = text.trim_start();
        let json = transformers::decode_json_patch(&text);
        let sm: Option<Vec<Value>> = if trimmed.starts_with('[') && json.is_ok() {
            None
        } else {
            match resources_from_text(&text) {
                Ok(rs)
                    if !rs.is_empty() && rs.iter().all(|r| r.obj.is_object()) && json.is_err() =>
                {
                    Some(rs.into_iter().map(|r| r.obj).collect())
                }
                _ => None,
            }
        };
        match (sm, json) {
            (Some(docs), _) => {
                let patches: Vec<SmPatch> = docs
                    .into_iter()
                    .map(|p| SmPatch {
                        patch: p,
                        allow_name_change: allow_name,
                        allow_kind_change: allow_kind,
                    })
                    .collect();
                if let Some(sel) = &patch.target {
                    if patches.len() > 1 {
                        return Err(err(format!(
                            "Multiple Strategic-Merge Patches in one `patches` entry is not allowed to set `patches.target` field: {source}"
                        )));
                    }
                    let compiled = crate::selector::CompiledSelector::new(sel).map_err(&err)?;
                    let selected: Vec<ResId> = resources
                        .iter()
                        .filter(|r| compiled.matches(r))
                        .map(Resource::cur_id)
                        .collect();
                    let mut kept = Vec::with_capacity(resources.len());
                    for mut r in std::mem::take(resources) {
                        if selected.contains(&r.cur_id()) {
                            // The patch's own name does not matter: the target keeps its name.
                            let p = patches[0].clone();
                            let keep =
                                transformers::apply_sm_patch(&mut r, &p, schema).map_err(|e| {
                                    err(format!("applying patch {source} to {}: {e}", r.cur_id()))
                                })?;
                            if !keep {
                                continue;
                            }
                        }
                        kept.push(r);
                    }
                    *resources = kept;
                } else {
                    for p in &patches {
                        apply_sm_patch_by_id(resources, p, schema).map_err(&err)?;
                    }
                }
                Ok(())
            }
            (None, Ok(jp)) => {
                let Some(sel) = &patch.target else {
                    return Err(err(format!("must specify a target for JSON patch {source}")));
                };
                self.apply_json_patch_to_selected(resources, sel, &jp).map_err(err)
            }
            (None, Err(_)) => Err(err(format!("unable to parse SM or JSON patch from {source}"))),
        }
    }

    fn apply_json_patch_to_selected(
        &self,
        resources: &mut [Resource],
        sel: &Selector,
        jp: &json_patch::Patch,
    ) -> std::result::Result<(), String> {
        let compiled = crate::selector::CompiledSelector::new(sel)?;
        for r in resources.iter_mut() {
            if compiled.matches(r) {
                let id = r.cur_id();
                transformers::apply_json_patch(r, jp)
                    .map_err(|e| format!("applying JSON patch to {id}: {e}"))?;
            }
        }
        Ok(())
    }

    fn run_plugin_transformer(
        &self,
        target: &Target,
        ra: &mut Accumulator,
        config: &Value,
        schema: &sluice_smp::Schema,
    ) -> Result<()> {
        let ctx = target.ctx();
        let err = |e: String| Error::build(ctx.clone(), e);
        let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
        require_builtin(config).map_err(&err)?;
        let field_specs = |key: &str| -> Result<Vec<FieldSpec>> {
            match config.get(key) {
                Some(v) if !v.is_null() => {
                    serde_json::from_value(v.clone()).map_err(|e| err(format!("{kind} {key}: {e}")))
                }
                _ => Ok(Vec::new()),
            }
        };
        let string_map = |key: &str| -> Vec<(String, String)> {
            config
                .get(key)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map(str::to_string).unwrap_or_else(|| {
                                    if v.is_null() { String::new() } else { v.to_string() }
                                }),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        match kind {
            "PrefixSuffixTransformer" | "PrefixTransformer" | "SuffixTransformer" => {
                let fss = field_specs("fieldSpecs")?;
                let prefix = text("prefix");
                let suffix = text("suffix");
                if !prefix.is_empty() {
                    transformers::add_name_affix(&mut ra.resources, &prefix, true, &fss)
                        .map_err(err)?;
                }
                if !suffix.is_empty() {
                    transformers::add_name_affix(&mut ra.resources, &suffix, false, &fss)
                        .map_err(err)?;
                }
            }
            "LabelTransformer" => {
                transformers::set_map_entries(
                    &mut ra.resources,
                    &string_map("labels"),
                    &field_specs("fieldSpecs")?,
                )
                .map_err(err)?;
            }
            "AnnotationsTransformer" => {
                transformers::set_map_entries(
                    &mut ra.resources,
                    &string_map("annotations"),
                    &field_specs("fieldSpecs")?,
                )
                .map_err(err)?;
            }
            "NamespaceTransformer" => {
                let ns = crate::resource::str_at(config, &["metadata", "namespace"]).to_string();
                let unset_only = config.get("unsetOnly").and_then(Value::as_bool).unwrap_or(false);
                let mode = match config
                    .get("setRoleBindingSubjects")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                {
                    "" | "defaultOnly" => SubjectMode::DefaultOnly,
                    "allServiceAccounts" => SubjectMode::AllServiceAccounts,
                    "none" => SubjectMode::None,
                    other => {
                        return Err(err(format!(
                            "invalid value {other:?} for setRoleBindingSubjects"
                        )));
                    }
                };
                transformers::set_namespace(
                    &mut ra.resources,
                    &ns,
                    &field_specs("fieldSpecs")?,
                    unset_only,
                    mode,
                )
                .map_err(err)?;
            }
            "ImageTagTransformer" => {
                let image: crate::types::Image =
                    serde_json::from_value(config.get("imageTag").cloned().unwrap_or(Value::Null))
                        .map_err(|e| err(format!("{kind}: {e}")))?;
                transformers::set_image(&mut ra.resources, &image, &field_specs("fieldSpecs")?)
                    .map_err(err)?;
            }
            "ReplicaCountTransformer" => {
                let replica: crate::types::Replica =
                    serde_json::from_value(config.get("replica").cloned().unwrap_or(Value::Null))
                        .map_err(|e| err(format!("{kind}: {e}")))?;
                transformers::set_replicas(
                    &mut ra.resources,
                    &replica,
                    &field_specs("fieldSpecs")?,
                )
                .map_err(err)?;
            }
            "PatchTransformer" => {
                let patch: Patch = serde_json::from_value(strip_plugin_fields(config))
                    .map_err(|e| err(format!("{kind}: {e}")))?;
                self.apply_patch(target, &mut ra.resources, &patch, schema)?;
            }
            "PatchStrategicMergeTransformer" => {
                let mut patches = Vec::new();
                if let Some(Value::Array(paths)) = config.get("paths") {
                    for p in paths.iter().filter_map(Value::as_str) {
                        patches.extend(self.load_sm_patches(target, p, false, false)?);
                    }
                }
                let inline = text("patches");
                if !inline.is_empty() {
                    patches.extend(self.load_sm_patches(target, &inline, false, false)?);
                }
                for patch in &patches {
                    apply_sm_patch_by_id(&mut ra.resources, patch, schema).map_err(&err)?;
                }
            }
            "PatchJson6902Transformer" => {
                let sel: Selector =
                    serde_json::from_value(config.get("target").cloned().unwrap_or(Value::Null))
                        .map_err(|e| err(format!("{kind} target: {e}")))?;
                let body = if !text("path").is_empty() {
                    let p = self.file_in(target, &text("path"))?;
                    self.read_text(&p)?
                } else {
                    text("jsonOp")
                };
                let jp = transformers::decode_json_patch(&body)
                    .map_err(|e| err(format!("{kind}: {e}")))?;
                self.apply_json_patch_to_selected(&mut ra.resources, &sel, &jp).map_err(err)?;
            }
            "ReplacementTransformer" => {
                let mut reps: Vec<Replacement> = Vec::new();
                if let Some(Value::Array(items)) = config.get("replacements") {
                    for item in items {
                        if let Some(path) = item.get("path").and_then(Value::as_str) {
                            let p = self.file_in(target, path)?;
                            let body = self.read_text(&p)?;
                            for doc in yaml::parse_documents(&body)
                                .map_err(|message| Error::Yaml { path: p.clone(), message })?
                            {
                                let list = match doc {
                                    Value::Array(v) => v,
                                    other => vec![other],
                                };
                                for one in list {
                                    reps.push(
                                        serde_json::from_value(one)
                                            .map_err(|e| err(format!("{kind}: {e}")))?,
                                    );
                                }
                            }
                        } else {
                            reps.push(
                                serde_json::from_value(item.clone())
                                    .map_err(|e| err(format!("{kind}: {e}")))?,
                            );
                        }
                    }
                }
                transformers::apply_replacements(&mut ra.resources, &reps).map_err(err)?;
            }
            "ValueAddTransformer" => {
                let mut value = text("value");
                if value.is_empty() {
                    value = file_name(&target.dir);
                }
                let targets =
                    config.get("targets").and_then(Value::as_array).cloned().unwrap_or_default();
                for t in targets {
                    let field_path =
                        t.get("fieldPath").and_then(Value::as_str).unwrap_or("").to_string();
                    let position = t.get("filePathPosition").and_then(Value::as_i64).unwrap_or(0);
                    let compiled = match t.get("selector") {
                        Some(sel) if !sel.is_null() => {
                            let sel: Selector = serde_json::from_value(sel.clone())
                                .map_err(|e| err(format!("{kind} selector: {e}")))?;
                            Some(crate::selector::CompiledSelector::new(&sel).map_err(&err)?)
                        }
                        _ => None,
                    };
                    for r in ra.resources.iter_mut() {
                        if compiled.as_ref().is_some_and(|c| !c.matches(r)) {
                            continue;
                        }
                        if field_path == "metadata/namespace" {
                            transformers::set_namespace(
                                std::slice::from_mut(r),
                                &value,
                                &[],
                                false,
                                SubjectMode::DefaultOnly,
                            )
                            .map_err(&err)?;
                        } else {
                            transformers::value_add(r, &field_path, &value, position)
                                .map_err(&err)?;
                        }
                    }
                }
            }
            "HashTransformer" => {
                for r in ra.resources.iter_mut().filter(|r| r.needs_hash) {
                    let hash = generators::hash_object(&r.obj);
                    r.store_previous_id();
                    let name = format!("{}-{}", r.name(), hash);
                    r.set_name(&name);
                }
            }
            other => {
                return Err(err(format!(
                    "transformer kind '{other}' is not supported: only builtin transformers (apiVersion: builtin) can run"
                )));
            }
        }
        Ok(())
    }

    fn merge_vars(&self, target: &Target, ra: &mut Accumulator) -> Result<()> {
        for v in &target.kustomization.vars {
            let mut v = v.clone();
            if v.fieldref.field_path.is_empty() {
                v.fieldref.field_path = "metadata.name".into();
            }
            let mut gvk = v.objref.gvk.clone();
            if !v.objref.api_version.is_empty() {
                let g = Gvk::from_api_version(&v.objref.api_version, &gvk.kind);
                gvk.group = g.group;
                gvk.version = g.version;
            }
            let id =
                ResId { gvk, name: v.objref.name.clone(), namespace: v.objref.namespace.clone() };
            let exact = !id.namespace.is_empty() || id.gvk.is_cluster_scoped();
            let matched: Vec<usize> = ra
                .resources
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.all_ids()
                        .iter()
                        .any(|rid| if exact { rid.equals(&id) } else { rid.gvkn_equals(&id) })
                })
                .map(|(i, _)| i)
                .collect();
            if matched.len() > 1 {
                return Err(Error::build(
                    format!("{}: merging vars", target.ctx()),
                    format!(
                        "found {} resId matches for var {} (unable to disambiguate)",
                        matched.len(),
                        v.name
                    ),
                ));
            }
            if let Some(&i) = matched.first() {
                ra.resources[i].ref_var_names.push(v.name.clone());
            }
            if ra.vars.iter().any(|x| x.name == v.name) {
                return Err(Error::build(
                    format!("{}: merging vars", target.ctx()),
                    format!("var '{}' already encountered", v.name),
                ));
            }
            ra.vars.push(v);
        }
        Ok(())
    }
}

/// Who transformed a resource: recorded when build metadata asks for it.
struct Transformation {
    configured_in: String,
    api_version: String,
    kind: String,
    name: String,
    namespace: String,
}

impl Transformation {
    fn to_yaml_item(&self) -> String {
        let q =
            |s: &str| yaml::to_yaml_document(&Value::String(s.to_string())).trim_end().to_string();
        let mut out = format!("- configuredIn: {}\n  configuredBy:\n", q(&self.configured_in));
        out.push_str(&format!(
            "    apiVersion: {}\n    kind: {}\n",
            q(&self.api_version),
            q(&self.kind)
        ));
        if !self.name.is_empty() {
            out.push_str(&format!("    name: {}\n", q(&self.name)));
        }
        if !self.namespace.is_empty() {
            out.push_str(&format!("    namespace: {}\n", q(&self.namespace)));
        }
        out
    }
}

fn note_builtin(target: &Target, resources: &mut [Resource], kind: &str) {
    let Some(o) = &target.origin else { return };
    let t = Transformation {
        configured_in: join_origin(o, &file_name(&target.file)),
        api_version: "builtin".into(),
        kind: kind.into(),
        name: String::new(),
        namespace: String::new(),
    };
    note(resources, &t);
}

/// Records a transformer on every resource (as its origin when it has none, as kustomize does).
fn note(resources: &mut [Resource], t: &Transformation) {
    for r in resources.iter_mut() {
        if r.annotations().contains_key(ORIGIN_ANNOTATION) {
            r.transformations.push(t.to_yaml_item());
        } else {
            let by = (t.api_version.as_str(), t.kind.as_str(), t.name.as_str());
            r.set_annotation(
                ORIGIN_ANNOTATION,
                &origin_yaml(None, Some(&t.configured_in), Some(by)),
            );
        }
    }
}

/// The builtin IAMPolicyGenerator (GKE workload identity): a ServiceAccount bound to a Google service account.
fn iam_policy_service_account(config: &Value) -> std::result::Result<Value, String> {
    let cloud = config.get("cloud").and_then(Value::as_str).unwrap_or("");
    if cloud != "gke" {
        return Err(format!("IAMPolicyGenerator: cloud {cloud:?} is not supported (only gke)"));
    }
    let s = |p: &[&str]| crate::resource::str_at(config, p).to_string();
    let (ks_name, ks_ns) =
        (s(&["kubernetesService", "name"]), s(&["kubernetesService", "namespace"]));
    let (sa_name, project) = (s(&["serviceAccount", "name"]), s(&["serviceAccount", "projectId"]));
    if ks_name.is_empty() || sa_name.is_empty() || project.is_empty() {
        return Err("IAMPolicyGenerator: kubernetesService.name, serviceAccount.name and serviceAccount.projectId are required".into());
    }
    let mut metadata = Map::new();
    let mut annotations = Map::new();
    annotations.insert(
        "iam.gke.io/gcp-service-account".into(),
        Value::String(format!("{sa_name}@{project}.iam.gserviceaccount.com")),
    );
    metadata.insert("annotations".into(), Value::Object(annotations));
    metadata.insert("name".into(), Value::String(ks_name));
    if !ks_ns.is_empty() {
        metadata.insert("namespace".into(), Value::String(ks_ns));
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String("v1".into()));
    obj.insert("kind".into(), Value::String("ServiceAccount".into()));
    obj.insert("metadata".into(), Value::Object(metadata));
    Ok(Value::Object(obj))
}

fn stringify_annotations(obj: &mut Value) {
    if let Some(Value::Object(annotations)) = obj.pointer_mut("/metadata/annotations") {
        for v in annotations.values_mut() {
            match v {
                Value::String(_) => {}
                Value::Null => *v = Value::String(String::new()),
                Value::Bool(b) => *v = Value::String(b.to_string()),
                Value::Number(n) => *v = Value::String(n.to_string()),
                other => *other = Value::String(serde_json::to_string(other).unwrap_or_default()),
            }
        }
    }
}

/// Only builtin plugins (`apiVersion: builtin`) run: exec, Go and KRM function plugins are not supported.
fn require_builtin(config: &Value) -> std::result::Result<(), String> {
    let api = config.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    if api != "builtin" {
        return Err(format!(
            "plugin {kind}.{api} is not supported: only builtin generators and transformers (apiVersion: builtin) can run"
        ));
    }
    Ok(())
}

fn kind_or_default(t: &Target) -> String {
    if t.kustomization.kind.is_empty() {
        "Kustomization".into()
    } else {
        t.kustomization.kind.clone()
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
}

fn origin_for_plugin(config: &Value, configured_in: &str) -> String {
    let api = config.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = crate::resource::str_at(config, &["metadata", "name"]);
    origin_yaml(None, Some(configured_in), Some((api, kind, name)))
}

fn strip_plugin_fields(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("metadata");
    }
    c
}

fn default_orders() -> (Vec<String>, Vec<String>) {
    (
        ORDER_FIRST.iter().map(|s| s.to_string()).collect(),
        ORDER_LAST.iter().map(|s| s.to_string()).collect(),
    )
}

/// kustomize reads kustomization fields case-insensitively (Go's JSON decoding): map them to their canonical names.
pub(crate) fn canonical_field_names(value: Value) -> Value {
    const NAMES: &[&str] = &[
        "apiVersion",
        "kind",
        "metadata",
        "openapi",
        "namePrefix",
        "nameSuffix",
        "namespace",
        "commonLabels",
        "labels",
        "commonAnnotations",
        "patchesStrategicMerge",
        "patchesJson6902",
        "patches",
        "images",
        "imageTags",
        "replacements",
        "replicas",
        "vars",
        "sortOptions",
        "resources",
        "components",
        "crds",
        "bases",
        "configMapGenerator",
        "secretGenerator",
        "helmGlobals",
        "helmCharts",
        "helmChartInflationGenerator",
        "generatorOptions",
        "configurations",
        "generators",
        "transformers",
        "validators",
        "buildMetadata",
    ];
    let Value::Object(map) = value else { return value };
    let mut out = Map::new();
    for (k, v) in map {
        let key =
            NAMES.iter().find(|n| n.eq_ignore_ascii_case(&k)).map(|n| n.to_string()).unwrap_or(k);
        out.insert(key, v);
    }
    Value::Object(out)
}

/// Legacy fields mapped onto current ones, as `kustomize edit fix` does.
fn fix_legacy(k: &mut Kustomization) {
    if k.kind.is_empty() {
        k.kind = "Kustomization".into();
    }
    let legacy: Vec<_> = std::mem::take(&mut k.image_tags);
    k.images.extend(legacy);
}

/// Parses resources from YAML text: documents, with `*List` kinds expanded.
pub(crate) fn resources_from_text(text: &str) -> std::result::Result<Vec<Resource>, String> {
    let marked = yaml::normalize_timestamps(text);
    let mut docs = yaml::parse_documents(&marked)?;
    if matches!(marked, std::borrow::Cow::Owned(_)) {
        docs.iter_mut().for_each(yaml::resolve_timestamps);
    }
    let mut queue: std::collections::VecDeque<Value> = docs.into();
    let mut out = Vec::new();
    while let Some(doc) = queue.pop_front() {
        if !doc.is_object() {
            return Err(format!(
                "expected a YAML map (a Kubernetes object), found: {}",
                yaml::to_yaml_document(&doc).trim_end()
            ));
        }
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind.ends_with("List") && doc.get("items").is_some() {
            match doc.get("items") {
                Some(Value::Array(items)) => queue.extend(items.iter().cloned()),
                Some(Value::Null) => {}
                _ => return Err(format!("expected array in {kind}/items")),
            }
            continue;
        }
        if doc.as_object().is_some_and(Map::is_empty) {
            continue;
        }
        // kyaml's GetValidatedMetadata: a kind, and a name unless the kind is a list.
        if kind.is_empty() {
            return Err(format!("missing kind in object {}", compact(&doc)));
        }
        if !kind.ends_with("List")
            && crate::resource::str_at(&doc, &["metadata", "name"]).is_empty()
        {
            return Err(format!("missing metadata.name in object {}", compact(&doc)));
        }
        out.push(Resource::new(doc));
    }
    Ok(out)
}

fn compact(doc: &Value) -> String {
    let text = serde_json::to_string(doc).unwrap_or_default();
    if text.len() > 200 {
        format!("{}...", &text[..text.char_indices().nth(200).map_or(text.len(), |(i, _)| i)])
    } else {
        text
    }
}

fn make_generated(
    args: &crate::types::GeneratorArgs,
    options: &crate::types::GeneratorOptions,
    is_secret: bool,
    loader: &dyn KvLoader,
) -> std::result::Result<Resource, String> {
    // kustomize treats an unknown behavior as unspecified.
    let behavior = Behavior::parse(&args.behavior).unwrap_or_default();
    let obj = generators::generate(args, options, is_secret, loader)?;
    let mut r = Resource::new(obj);
    r.behavior = behavior;
    r.needs_hash = options.disable_name_suffix_hash != Some(true);
    Ok(r)
}

/// Ids already in a resource list, for duplicate checks without rescanning the list.
struct IdIndex(std::collections::HashSet<String>);

impl IdIndex {
    fn of(list: &[Resource]) -> IdIndex {
        IdIndex(list.iter().map(Resource::id_key).collect())
    }
}

fn append(list: &mut Vec<Resource>, index: &mut IdIndex, r: Resource) -> Result<()> {
    let id = r.cur_id();
    if !index.0.insert(r.id_key()) {
        return Err(Error::build(
            "",
            format!("may not add resource with an already registered id: {id}"),
        ));
    }
    list.push(r);
    Ok(())
}

fn merge_accumulator(ra: &mut Accumulator, other: Accumulator) -> Result<()> {
    let mut index = IdIndex::of(&ra.resources);
    for r in other.resources {
        append(&mut ra.resources, &mut index, r)?;
    }
    ra.config.merge(&other.config).map_err(|e| Error::build("merging config", e))?;
    for v in other.vars {
        if ra.vars.iter().any(|x| x.name == v.name) {
            return Err(Error::build(
                "merging vars",
                format!("var '{}' already encountered", v.name),
            ));
        }
        ra.vars.push(v);
    }
    Ok(())
}

/// Adds a generated resource, merging into or replacing an existing one per its behavior.
fn absorb(list: &mut Vec<Resource>, r: Resource) -> std::result::Result<(), String> {
    let id = r.cur_id();
    let matches: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, x)| x.all_ids().iter().any(|i| i.equals(&id)))
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [] => match r.behavior {
            Behavior::Merge | Behavior::Replace => {
                Err(format!("id {id} does not exist; cannot merge or replace"))
            }
            _ => {
                list.push(r);
                Ok(())
            }
        },
        [i] => {
            let old = &list[*i];
            let mut new = r;
            match new.behavior {
                Behavior::Replace | Behavior::Merge => {
                    let merge_data = new.behavior == Behavior::Merge;
                    let old_origin = old.annotations().get(ORIGIN_ANNOTATION).cloned();
                    let mut labels = old.labels();
                    labels.extend(new.labels());
                    let mut annotations = old.annotations();
                    annotations.extend(new.annotations());
                    new.set_string_map("labels", labels);
                    new.set_string_map("annotations", annotations);
                    new.set_name(old.name());
                    new.set_namespace(old.namespace());
                    let needs_hash = new.needs_hash && old.needs_hash;
                    new.prev_ids = old.prev_ids.clone();
                    new.prefixes = old.prefixes.clone();
                    new.suffixes = old.suffixes.clone();
                    new.ref_by = old.ref_by.clone();
                    new.behavior = old.behavior;
                    new.needs_hash = needs_hash;
                    new.ref_var_names = old.ref_var_names.clone();
                    new.transformations = old.transformations.clone();
                    if merge_data {
                        for field in ["data", "binaryData"] {
                            let mut merged = old
                                .obj
                                .get(field)
                                .and_then(Value::as_object)
                                .cloned()
                                .unwrap_or_default();
                            if let Some(m) = new.obj.get(field).and_then(Value::as_object) {
                                merged.extend(m.clone());
                            }
                            if let Some(o) = new.obj.as_object_mut() {
                                if merged.is_empty() {
                                    o.remove(field);
                                } else {
                                    o.insert(field.into(), Value::Object(merged));
                                }
                            }
                        }
                        if let Some(orig) = old_origin {
                            let mut a = new.annotations();
                            a.insert(ORIGIN_ANNOTATION.into(), orig);
                            new.set_string_map("annotations", a);
                        }
                    }
                    list[*i] = new;
                    Ok(())
                }
                _ => Err(format!("id {id} exists; behavior must be merge or replace")),
            }
        }
        _ => Err(format!("found multiple objects that could accept merge of {id}")),
    }
}

fn apply_sm_patch_by_id(
    resources: &mut Vec<Resource>,
    patch: &SmPatch,
    schema: &sluice_smp::Schema,
) -> std::result::Result<(), String> {
    let id = patch.id();
    let matches: Vec<usize> = resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.all_ids().iter().any(|i| i.equals(&id)))
        .map(|(i, _)| i)
        .collect();
    let idx = match matches.as_slice() {
        [i] => *i,
        [] => {
            return Err(format!(
                "no matches for Id {id}; failed to find unique target for patch {id}"
            ));
        }
        _ => {
            return Err(format!(
                "multiple matches for Id {id}; failed to find unique target for patch {id}"
            ));
        }
    };
    let keep = transformers::apply_sm_patch(&mut resources[idx], patch, schema)
        .map_err(|e| format!("applying patch to {id}: {e}"))?;
    if !keep {
        resources.remove(idx);
    }
    Ok(())
}
