//! COPY and ADD: sources from the build context, another stage, an image, a named context,
//! a heredoc, an HTTP(S) URL or a git repository; `--chown`, `--chmod` (octal or symbolic),
//! `--link` (a layer independent of what is below it), `--parents`, `--exclude`, and ADD's
//! `--checksum`, `--keep-git-dir` and `--unpack`.

use std::collections::BTreeMap;

use llb::{FileChain, OpOptions, Output, pb};

use super::plan::Source;
use super::run::chomp;
use super::{Converter, StageState, clean_path, parse_chown, path_relative_to_workdir, workdir_of};
use crate::error::{Error, ErrorKind};
use crate::instructions::{CopyArgs, Spanned};
use crate::shell::{Lexer, LexerOptions};

/// A git source as the user wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GitRef {
    /// The URL to clone, without fragment or query.
    pub(crate) remote: String,
    /// Branch, tag or commit.
    pub(crate) reference: Option<String>,
    /// Directory inside the repository.
    pub(crate) subdir: Option<String>,
    /// `keep-git-dir=` from the query form.
    pub(crate) keep_git_dir: Option<bool>,
    /// `checksum=` (or `commit=`) from the query form.
    pub(crate) checksum: Option<String>,
    /// `submodules=` from the query form.
    pub(crate) submodules: Option<bool>,
}

impl GitRef {
    /// `git://host/path#ref:subdir`, the LLB identifier.
    fn identifier(&self) -> String {
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
pub(crate) fn parse_git_ref(src: &str) -> Result<Option<GitRef>, String> {
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
        let invalid = |message: String| {
            Error::at(
                ErrorKind::BadArguments {
                    instruction: keyword.into(),
                    message,
                },
                location,
            )
        };
        let owner = match &copy.chown {
            Some(chown) => Some(parse_chown(&self.expand(chown, state, location)?)),
            None => None,
        };
        let chmod = match &copy.chmod {
            Some(c) => Some(self.expand(c, state, location)?),
            None => None,
        };
        let (mode, mode_str) = match chmod.as_deref() {
            None => (-1, String::new()),
            Some(value) => match u32::from_str_radix(value, 8) {
                Ok(m) if m <= 0o7777 => (m as i32, String::new()),
                Ok(_) => return Err(invalid(bad_chmod(value))),
                Err(_) if value.chars().all(|c| c.is_ascii_digit()) => return Err(invalid(bad_chmod(value))),
                Err(_) => {
                    crate::chmod::validate_symbolic_mode(value)
                        .map_err(|e| invalid(format!("invalid chmod parameter {value:?}: {e}")))?;
                    (-1, value.to_string())
                }
            },
        };
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
        let display = self.display_text(&spanned.original, state);
        let prefix_options = self.op_options(state, &display, Some(location));

        let base_copy = pb::FileActionCopy {
            dest: dest.clone(),
            owner: owner.clone(),
            mode,
            mode_str: mode_str.clone(),
            timestamp: -1,
            create_dest_path: true,
            exclude_patterns: copy.exclude.clone(),
            ..Default::default()
        };
        let link = copy.link && chmod.is_none();
        let mut chain = FileChain::new(if link { None } else { state.fs.as_ref() });
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
        let context_source = copy.from.is_none();
        let from_state = if context_source {
            None
        } else {
            self.copy_from(stage, index)
        };
        for src in &sources {
            message.push(' ');
            message.push_str(src);
            if context_source && let Some(git) = parse_git_ref(src).map_err(invalid)? {
                if !is_add {
                    return Err(invalid("source can't be a git ref for COPY".into()));
                }
                let state_out = self
                    .git_source(&git, copy, checksum.as_deref(), &prefix_options)
                    .map_err(invalid)?;
                chain = chain.copy(
                    Some(&state_out),
                    pb::FileActionCopy {
                        src: "/".into(),
                        dir_copy_contents: true,
                        ..base_copy.clone()
                    },
                );
                continue;
            }
            if context_source && is_http(src) {
                if !is_add {
                    return Err(invalid("source can't be a URL for COPY".into()));
                }
                let file = url_file_name(src);
                let mut attrs = BTreeMap::new();
                attrs.insert(llb::attr::HTTP_FILENAME.to_string(), file.clone());
                if let Some(c) = &checksum {
                    c.parse::<oci::Digest>()
                        .map_err(|e| invalid(format!("invalid checksum {c:?}: {e}")))?;
                    attrs.insert(llb::attr::HTTP_CHECKSUM.to_string(), c.clone());
                }
                let options = OpOptions {
                    ..prefix_options.clone()
                };
                let downloaded = Output::source(src.clone(), attrs, options);
                chain = chain.copy(
                    Some(&downloaded),
                    pb::FileActionCopy {
                        src: format!("/{file}"),
                        attempt_unpack_docker_compatibility: copy.unpack.unwrap_or(false),
                        ..base_copy.clone()
                    },
                );
                continue;
            }
            let source = if context_source {
                Some(self.local(super::CONTEXT_NAME))
            } else {
                from_state.clone()
            };
            let (src_path, include, required) = if copy.parents {
                let (parent, pattern) = match src.split_once("/./") {
                    Some((p, pat)) => (p.to_string(), pat.to_string()),
                    None => ("/".to_string(), src.clone()),
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
            } else {
                (clean_path(&format!("/{src}")), Vec::new(), Vec::new())
            };
            chain = chain.copy(
                source.as_ref(),
                pb::FileActionCopy {
                    src: src_path,
                    follow_symlink: true,
                    dir_copy_contents: true,
                    allow_wildcard: true,
                    allow_empty_wildcard: true,
                    attempt_unpack_docker_compatibility: is_add && copy.unpack.unwrap_or(true),
                    include_patterns: include,
                    required_paths: required,
                    ..base_copy.clone()
                },
            );
        }
        for doc in &copy.heredocs {
            message.push_str(&format!(" <<{}", doc.name));
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
                data = lexer
                    .process_word(&data, &state.env)
                    .map_err(|e| super::expansion_error(e, location))?;
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
            chain = chain.copy(
                file.as_ref(),
                pb::FileActionCopy {
                    src: format!("/{}", doc.name),
                    ..base_copy.clone()
                },
            );
        }
        message.push(' ');
        message.push_str(&dest_raw);

        if link {
            // The copy lands in an empty layer of its own, merged on top: it stays valid (and
            // cached) whatever happens below it.
            let layer = chain.finish(prefix_options.clone());
            let merged = match (&state.fs, layer) {
                (None, layer) => layer,
                (Some(_), None) => state.fs.clone(),
                (Some(base), Some(layer)) => {
                    let options = OpOptions {
                        description: prefix_options.description.as_ref().map(|d| link_name(d)),
                        ..prefix_options.clone()
                    };
                    Some(Output::merge(vec![base.clone(), layer], options))
                }
            };
            state.fs = merged;
        } else {
            state.fs = chain.finish(prefix_options);
        }
        self.layer_history(state, message);
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
        let mut attrs = BTreeMap::new();
        attrs.insert(llb::attr::GIT_FULL_URL.to_string(), git.remote.clone());
        let keep = match (copy.keep_git_dir, git.keep_git_dir) {
            (true, Some(false)) => return Err("inconsistent keep-git-dir configuration".into()),
            (flag, query) => flag || query.unwrap_or(false),
        };
        if keep {
            attrs.insert(llb::attr::GIT_KEEP_GIT_DIR.to_string(), "true".into());
        }
        let checksum = match (checksum, git.checksum.as_deref()) {
            (Some(a), Some(b)) if a != b => return Err(format!("checksum mismatch {a:?} != {b:?}")),
            (a, b) => a.or(b),
        };
        if let Some(c) = checksum {
            attrs.insert(llb::attr::GIT_CHECKSUM.to_string(), c.to_string());
        }
        if git.submodules == Some(false) {
            attrs.insert(llb::attr::GIT_SKIP_SUBMODULES.to_string(), "true".into());
        }
        Ok(Output::source(git.identifier(), attrs, options.clone()))
    }
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
