//! COPY and ADD: sources from the build context, another stage, an image, a named context,
//! a heredoc, an HTTP(S) URL or a git repository; `--chown`, `--chmod` (octal or symbolic),
//! `--link` (a layer independent of what is below it), `--parents`, `--exclude`, and ADD's
//! `--checksum`, `--keep-git-dir` and `--unpack`.

use std::collections::BTreeMap;

use llb::{FileChain, OpOptions, Output, pb};

use super::budget::Budget;
use super::options::CONTEXT_NAME;
use super::paths::{clean_path, path_relative_to_workdir};
use super::plan::Source;
use super::state::{Converter, StageState, chomp, parse_chown, workdir_of};
use crate::error::{Error, ErrorKind, Location};
use crate::instructions::{CopyArgs, Spanned};
use crate::parser::Heredoc;
use crate::shell::{Lexer, LexerOptions};

/// A git source as the user wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitRef {
    /// The URL to clone, without fragment or query.
    pub remote: String,
    /// Branch, tag or commit.
    pub reference: Option<String>,
    /// Directory inside the repository.
    pub subdir: Option<String>,
    /// `keep-git-dir=` from the query form.
    pub keep_git_dir: Option<bool>,
    /// `checksum=` (or `commit=`) from the query form.
    pub checksum: Option<String>,
    /// `submodules=` from the query form.
    pub submodules: Option<bool>,
}

impl GitRef {
    /// The LLB source of this repository as a build context (`kiln build URL`): its commit
    /// (and subdirectory), with the options its query form gives.
    pub fn source(&self, options: OpOptions) -> Output {
        let mut attrs = BTreeMap::new();
        attrs.insert(llb::attr::GIT_FULL_URL.to_string(), self.remote.clone());
        if self.keep_git_dir == Some(true) {
            attrs.insert(llb::attr::GIT_KEEP_GIT_DIR.to_string(), "true".into());
        }
        if let Some(c) = &self.checksum {
            attrs.insert(llb::attr::GIT_CHECKSUM.to_string(), c.clone());
        }
        if self.submodules == Some(false) {
            attrs.insert(llb::attr::GIT_SKIP_SUBMODULES.to_string(), "true".into());
        }
        Output::source(self.identifier(), attrs, options)
    }

    /// `git://host/path#ref:subdir`, the LLB identifier: it never holds the URL's credentials,
    /// so it may be shown and logged.
    pub fn identifier(&self) -> String {
        let mut rest = self.remote.as_str();
        for scheme in ["https://", "http://", "git://", "ssh://"] {
            if let Some(r) = rest.strip_prefix(scheme) {
                rest = r;
                break;
            }
        }
        // Drop credentials, and turn the scp form `user@host:path` into `host/path`.
        let rest = match rest.split_once('@') {
            Some((_, after)) if !after.contains('@') => after,
            _ => rest,
        };
        let rest = if !self.remote.contains("://") {
            rest.replacen(':', "/", 1)
        } else {
            rest.to_string()
        };
        let mut id = format!("{}{rest}", llb::attr::SCHEME_GIT);
        if self.reference.is_some() || self.subdir.is_some() {
            id.push('#');
            id.push_str(self.reference.as_deref().unwrap_or(""));
            if let Some(subdir) = &self.subdir {
                id.push(':');
                id.push_str(subdir);
            }
        }
        id
    }
}

/// Whether `src` names a git repository, and how (BuildKit's `dfgitutil.ParseGitRef`).
/// Paths, and shorthands like `github.com/o/r` that look like local paths, are not git.
pub fn parse_git_ref(src: &str) -> Result<Option<GitRef>, String> {
    if src.starts_with('/') || src.starts_with("./") || src.starts_with("../") {
        return Ok(None);
    }
    let (without_fragment, fragment) = match src.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (src, None),
    };
    let (remote, query) = match without_fragment.split_once('?') {
        Some((a, q)) if a.contains("://") || a.contains('@') => (a, Some(q)),
        _ => (without_fragment, None),
    };
    let scp_like = !remote.contains("://")
        && remote
            .split_once(':')
            .is_some_and(|(host, path)| host.contains('@') && !host.contains('/') && !path.is_empty());
    let scheme_git = remote.starts_with("git://") || remote.starts_with("ssh://");
    let http = remote.starts_with("https://") || remote.starts_with("http://");
    let query_keys = [
        "ref",
        "tag",
        "branch",
        "commit",
        "subdir",
        "checksum",
        "keep-git-dir",
        "submodules",
    ];
    let has_git_query = query.is_some_and(|q| {
        q.split('&')
            .any(|kv| query_keys.contains(&kv.split_once('=').map_or(kv, |(k, _)| k)))
    });
    let http_git = http && (remote.trim_end_matches('/').ends_with(".git") || has_git_query);
    if !(scp_like || scheme_git || http_git) {
        return Ok(None);
    }
    let mut git = GitRef {
        remote: remote.to_string(),
        ..GitRef::default()
    };
    if let Some(fragment) = fragment {
        let (reference, subdir) = match fragment.split_once(':') {
            Some((r, s)) => (r, Some(s)),
            None => (fragment, None),
        };
        git.reference = Some(reference.to_string()).filter(|r| !r.is_empty());
        git.subdir = subdir.map(str::to_string).filter(|s| !s.is_empty());
    }
    if let Some(query) = query {
        if fragment.is_some() && has_git_query {
            return Err(format!(
                "git source {src:?} combines a #fragment with query parameters"
            ));
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "ref" | "tag" | "branch" => {
                    if git.reference.replace(v.to_string()).is_some() {
                        return Err(format!("git source {src:?} names more than one ref"));
                    }
                }
                "commit" | "checksum" => git.checksum = Some(v.to_string()),
                "subdir" => git.subdir = Some(v.to_string()),
                "keep-git-dir" => git.keep_git_dir = Some(v == "true" || v == "1"),
                "submodules" => git.submodules = Some(!(v == "false" || v == "0")),
                other => {
                    return Err(format!(
                        "git source {src:?}: unexpected query parameter {other:?}"
                    ));
                }
            }
        }
    }
    Ok(Some(git))
}

fn is_http(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// The file name an HTTP download gets: the last path segment of the URL.
fn url_file_name(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = without_scheme.split(['?', '#']).next().unwrap_or("");
    let path = path.split_once('/').map_or("", |(_, p)| p);
    match path.rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." => base.to_string(),
        _ => "__unnamed__".to_string(),
    }
}

fn has_wildcards(path: &str) -> bool {
    let mut escaped = false;
    for c in path.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// What one COPY or ADD applies to every source.
struct CopyContext<'c> {
    copy: &'c CopyArgs,
    is_add: bool,
    location: Location,
    /// The copy action every source starts from: destination, owner, mode, excludes.
    base: pb::FileActionCopy,
    /// The `--checksum`, expanded.
    checksum: Option<String>,
    /// The op options of the step (name, lines), shared by the sources it downloads.
    options: OpOptions,
    /// The stage or image `--from` names; `None` for the build context.
    from_state: Option<Output>,
}

impl CopyContext<'_> {
    fn keyword(&self) -> &'static str {
        if self.is_add { "ADD" } else { "COPY" }
    }

    fn invalid(&self, message: String) -> Error {
        bad_copy(self.keyword(), message, self.location)
    }

    /// Counts one more copy action: every action repeats the destination, mode and excludes.
    fn charge(&self, budget: &Budget, src: &str) -> Result<(), Error> {
        let excludes = self.base.exclude_patterns.iter().map(String::as_str);
        let texts = [src, self.base.dest.as_str(), self.base.mode_str.as_str()];
        budget.texts(texts.into_iter().chain(excludes), self.location)
    }
}

fn bad_copy(keyword: &str, message: String, location: Location) -> Error {
    let kind = ErrorKind::BadArguments {
        instruction: keyword.into(),
        message,
    };
    Error::at(kind, location)
}

impl Converter<'_> {
    pub(super) fn dispatch_copy(
        &mut self,
        stage: usize,
        index: usize,
        copy: &CopyArgs,
        is_add: bool,
        spanned: &Spanned,
        state: &mut StageState,
    ) -> Result<(), Error> {
        let location = spanned.location;
        let keyword = if is_add { "ADD" } else { "COPY" };
        let invalid = |message: String| bad_copy(keyword, message, location);
        let owner = match &copy.chown {
            Some(chown) => Some(parse_chown(&self.expand(chown, state, location)?)),
            None => None,
        };
        let chmod = match &copy.chmod {
            Some(c) => Some(self.expand(c, state, location)?),
            None => None,
        };
        let (mode, mode_str) = chmod_mode(chmod.as_deref()).map_err(invalid)?;
        let checksum = match &copy.checksum {
            Some(c) => Some(self.expand(c, state, location)?),
            None => None,
        };
        let mut sources = Vec::with_capacity(copy.sources.len());
        for s in &copy.sources {
            sources.push(self.expand(s, state, location)?);
        }
        if checksum.is_some() {
            if sources.len() != 1 {
                return Err(invalid("checksum can't be specified for multiple sources".into()));
            }
            if !is_http(&sources[0]) && parse_git_ref(&sources[0]).map_err(invalid)?.is_none() {
                return Err(invalid("checksum requires HTTP(S) or Git sources".into()));
            }
        }
        let dest_raw = self.expand(&copy.dest, state, location)?;
        let dest = path_relative_to_workdir(&workdir_of(state), &dest_raw);
        let total = sources.len() + copy.heredocs.len();
        if total > 1 && !dest.ends_with('/') {
            return Err(invalid(
                "with more than one source file, the destination must be a directory and end with a /".into(),
            ));
        }
        let display = self.display_text(&spanned.original, state, location)?;
        let options = self.op_options(state, &display, location)?;
        let link = copy.link && chmod.is_none();
        let context = CopyContext {
            copy,
            is_add,
            location,
            base: pb::FileActionCopy {
                dest,
                owner,
                mode,
                mode_str,
                timestamp: -1,
                create_dest_path: true,
                exclude_patterns: copy.exclude.clone(),
                ..Default::default()
            },
            checksum,
            options,
            from_state: if copy.from.is_none() {
                None
            } else {
                self.copy_from(stage, index)
            },
        };
        let mut chain = FileChain::new(if link { None } else { state.fs.as_ref() });
        for src in &sources {
            chain = self.copy_source(chain, &context, src)?;
        }
        for doc in &copy.heredocs {
            chain = self.copy_heredoc(chain, &context, doc, state)?;
        }
        self.finish_copy(chain, &context, link, state)?;
        let message = copy_message(copy, keyword, &sources, &dest_raw);
        self.layer_history(state, message, location)
    }

    /// Adds the copy of one source: a git repository or URL (ADD only), else a path in the
    /// build context or in what `--from` names.
    fn copy_source(&mut self, chain: FileChain, cx: &CopyContext<'_>, src: &str) -> Result<FileChain, Error> {
        cx.charge(&self.budget, src)?;
        let context_source = cx.copy.from.is_none();
        if context_source && let Some(git) = parse_git_ref(src).map_err(|m| cx.invalid(m))? {
            if !cx.is_add {
                return Err(cx.invalid("source can't be a git ref for COPY".into()));
            }
            let repository = self
                .git_source(&git, cx.copy, cx.checksum.as_deref(), &cx.options)
                .map_err(|m| cx.invalid(m))?;
            let action = pb::FileActionCopy {
                src: "/".into(),
                dir_copy_contents: true,
                ..cx.base.clone()
            };
            return Ok(chain.copy(Some(&repository), action));
        }
        if context_source && is_http(src) {
            return self.copy_download(chain, cx, src);
        }
        let source = if context_source {
            Some(self.local(CONTEXT_NAME))
        } else {
            cx.from_state.clone()
        };
        let (src_path, include, required) = if cx.copy.parents {
            parents_paths(src)
        } else {
            (clean_path(&format!("/{src}")), Vec::new(), Vec::new())
        };
        let action = pb::FileActionCopy {
            src: src_path,
            follow_symlink: true,
            dir_copy_contents: true,
            allow_wildcard: true,
            allow_empty_wildcard: true,
            attempt_unpack_docker_compatibility: cx.is_add && cx.copy.unpack.unwrap_or(true),
            include_patterns: include,
            required_paths: required,
            ..cx.base.clone()
        };
        Ok(chain.copy(source.as_ref(), action))
    }

    /// ADD of an HTTP(S) URL: a download, then a copy of the downloaded file.
    fn copy_download(
        &mut self,
        chain: FileChain,
        cx: &CopyContext<'_>,
        src: &str,
    ) -> Result<FileChain, Error> {
        if !cx.is_add {
            return Err(cx.invalid("source can't be a URL for COPY".into()));
        }
        let file = url_file_name(src);
        let mut attrs = BTreeMap::new();
        attrs.insert(llb::attr::HTTP_FILENAME.to_string(), file.clone());
        if let Some(c) = &cx.checksum {
            c.parse::<oci::Digest>()
                .map_err(|e| cx.invalid(format!("invalid checksum {c:?}: {e}")))?;
            attrs.insert(llb::attr::HTTP_CHECKSUM.to_string(), c.clone());
        }
        let downloaded = Output::source(src.to_string(), attrs, cx.options.clone());
        let action = pb::FileActionCopy {
            src: format!("/{file}"),
            attempt_unpack_docker_compatibility: cx.copy.unpack.unwrap_or(false),
            ..cx.base.clone()
        };
        Ok(chain.copy(Some(&downloaded), action))
    }

    /// A heredoc source: a file made from its body (expanded unless its delimiter was
    /// quoted), then copied.
    fn copy_heredoc(
        &mut self,
        chain: FileChain,
        cx: &CopyContext<'_>,
        doc: &Heredoc,
        state: &StageState,
    ) -> Result<FileChain, Error> {
        cx.charge(&self.budget, &doc.name)?;
        let mut data = if doc.chomp {
            chomp(&doc.content)
        } else {
            doc.content.clone()
        };
        if doc.expand {
            let lexer = Lexer::new(self.df.escape).with_options(LexerOptions {
                skip_process_quotes: true,
                ..LexerOptions::default()
            });
            data = self.budget.expand(&lexer, &data, &state.env, cx.location)?;
        }
        let file = FileChain::new(None)
            .mkfile(pb::FileActionMkFile {
                path: format!("/{}", doc.name),
                mode: 0o644,
                data: data.into_bytes(),
                owner: None,
                timestamp: -1,
            })
            .finish(self.internal_options("preparing inline document"));
        let action = pb::FileActionCopy {
            src: format!("/{}", doc.name),
            ..cx.base.clone()
        };
        Ok(chain.copy(file.as_ref(), action))
    }

    /// The step's result: the copies on top of the stage, or with `--link` in a layer of their
    /// own merged on top.
    fn finish_copy(
        &mut self,
        chain: FileChain,
        cx: &CopyContext<'_>,
        link: bool,
        state: &mut StageState,
    ) -> Result<(), Error> {
        if !link {
            state.fs = self.ops.made(chain.finish(cx.options.clone()));
            return Ok(());
        }
        // The copy lands in an empty layer of its own, merged on top: it stays valid (and
        // cached) whatever happens below it.
        let layer = self.ops.made(chain.finish(cx.options.clone()));
        state.fs = match (&state.fs, layer) {
            (None, layer) => layer,
            (Some(_), None) => state.fs.clone(),
            (Some(base), Some(layer)) => {
                let options = OpOptions {
                    description: cx.options.description.as_ref().map(|d| link_name(d)),
                    ..cx.options.clone()
                };
                self.ops
                    .made(Some(Output::merge(vec![base.clone(), layer], options)))
            }
        };
        Ok(())
    }

    /// The filesystem `COPY --from` names.
    fn copy_from(&mut self, stage: usize, index: usize) -> Option<Output> {
        let source = self
            .plan
            .refs
            .get(&(stage, index, 0))
            .cloned()
            .unwrap_or(Source::Scratch);
        self.source_state(&source)
    }

    fn git_source(
        &mut self,
        git: &GitRef,
        copy: &CopyArgs,
        checksum: Option<&str>,
        options: &OpOptions,
    ) -> Result<Output, String> {
        let keep = match (copy.keep_git_dir, git.keep_git_dir) {
            (true, Some(false)) => return Err("inconsistent keep-git-dir configuration".into()),
            (flag, query) => flag || query.unwrap_or(false),
        };
        let checksum = match (checksum, git.checksum.as_deref()) {
            (Some(a), Some(b)) if a != b => return Err(format!("checksum mismatch {a:?} != {b:?}")),
            (a, b) => a.or(b),
        };
        let resolved = GitRef {
            keep_git_dir: Some(keep),
            checksum: checksum.map(str::to_string),
            ..git.clone()
        };
        Ok(resolved.source(options.clone()))
    }
}

/// `--chmod`: an octal mode, or a symbolic one (kept as text for the file op). Returns the
/// numeric mode (-1 for none) and the symbolic text.
fn chmod_mode(chmod: Option<&str>) -> Result<(i32, String), String> {
    let Some(value) = chmod else {
        return Ok((-1, String::new()));
    };
    match u32::from_str_radix(value, 8) {
        Ok(m) if m <= 0o7777 => Ok((m as i32, String::new())),
        Ok(_) => Err(bad_chmod(value)),
        Err(_) if value.chars().all(|c| c.is_ascii_digit()) => Err(bad_chmod(value)),
        Err(_) => {
            gocompat::chmod::parse(value)
                .map_err(|e| format!("invalid chmod parameter {value:?}: {}", e.reason))?;
            Ok((-1, value.to_string()))
        }
    }
}

/// `COPY --parents` of `src`: the directory it is relative to, the pattern to include, and the
/// path that must exist (when the source has no wildcards).
fn parents_paths(src: &str) -> (String, Vec<String>, Vec<String>) {
    let (parent, pattern) = match src.split_once("/./") {
        Some((p, pat)) => (p.to_string(), pat.to_string()),
        None => ("/".to_string(), src.to_string()),
    };
    let pattern = clean_path(&format!("/{pattern}"));
    let required = if !has_wildcards(&parent) && !has_wildcards(&pattern) {
        vec![clean_path(&format!("/{parent}/{pattern}"))]
    } else {
        Vec::new()
    };
    (
        clean_path(&format!("/{parent}")),
        vec![pattern.trim_start_matches('/').to_string()],
        required,
    )
}

/// The history entry of a COPY or ADD: its flags, sources and destination as written.
fn copy_message(copy: &CopyArgs, keyword: &str, sources: &[String], dest: &str) -> String {
    let mut message = String::from(keyword);
    if copy.parents {
        message.push_str(" --parents");
    }
    if let Some(c) = &copy.chown {
        message.push_str(&format!(" --chown={c}"));
    }
    if let Some(c) = &copy.chmod {
        message.push_str(&format!(" --chmod={c}"));
    }
    for src in sources {
        message.push(' ');
        message.push_str(src);
    }
    for doc in &copy.heredocs {
        message.push_str(&format!(" <<{}", doc.name));
    }
    message.push(' ');
    message.push_str(dest);
    message
}

/// `[stage 2/3] LINK COPY …`: the name of the merge that applies a `--link` layer.
fn link_name(description: &str) -> String {
    match description.split_once("] ") {
        Some((prefix, rest)) => format!("{prefix}] LINK {rest}"),
        None => format!("LINK {description}"),
    }
}

fn bad_chmod(value: &str) -> String {
    format!("invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(src: &str) -> Option<GitRef> {
        parse_git_ref(src).unwrap()
    }

    #[test]
    fn git_references() {
        let g = git("https://github.com/moby/buildkit.git#v0.10.1:frontend").unwrap();
        assert_eq!(g.remote, "https://github.com/moby/buildkit.git");
        assert_eq!(g.reference.as_deref(), Some("v0.10.1"));
        assert_eq!(g.subdir.as_deref(), Some("frontend"));
        assert_eq!(
            g.identifier(),
            "git://github.com/moby/buildkit.git#v0.10.1:frontend"
        );
        let g = git("git@github.com:moby/buildkit.git#main").unwrap();
        assert_eq!(g.identifier(), "git://github.com/moby/buildkit.git#main");
        let g = git("git@github.com:o/r.git?ref=main&subdir=conf").unwrap();
        assert_eq!(g.identifier(), "git://github.com/o/r.git#main:conf");
        assert_eq!(g.remote, "git@github.com:o/r.git");
        let g = git("https://github.com/moby/buildkit.git?ref=main&subdir=docs&keep-git-dir=true").unwrap();
        assert_eq!(
            (g.reference.as_deref(), g.subdir.as_deref(), g.keep_git_dir),
            (Some("main"), Some("docs"), Some(true))
        );
        assert!(git("ssh://git@example.com/repo").is_some());
        assert!(git("git://example.com/repo").is_some());
        assert_eq!(git("https://example.com/file.tar.gz"), None);
        assert_eq!(git("./src"), None);
        assert_eq!(git("github.com/moby/buildkit"), None);
        assert_eq!(git("foo:bar"), None);
        assert!(parse_git_ref("https://x/r.git?ref=a&tag=b").is_err());
    }

    #[test]
    fn download_names() {
        assert_eq!(
            url_file_name("https://example.com/a/b/file.tar.gz?x=1"),
            "file.tar.gz"
        );
        assert_eq!(url_file_name("https://example.com/"), "__unnamed__");
        assert_eq!(url_file_name("https://example.com"), "__unnamed__");
    }

    #[test]
    fn link_names() {
        assert_eq!(link_name("[stage 2/3] COPY a b"), "[stage 2/3] LINK COPY a b");
    }
}
