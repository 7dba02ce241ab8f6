//! No module cycle between files: within a crate, two files must not import each other, directly
//! or around a ring.
//!
//! Each crate's module tree is read from its root file, following `mod` declarations (with
//! `#[path]`) into files; inline modules belong to the file that holds them. A file depends on
//! another when it names an item there through a path that resolves inside the crate: a `use`
//! (`use crate::…`, `use super::…`, `use self::…`, `use child::…`) or a path in code (`crate::x`,
//! `super::x`, `child::x`, also inside macro invocations for the first two). The path is
//! resolved down the module tree as far as it names modules, and the item belongs to the file of
//! the last module reached, so `use crate::Error` depends on the crate root.
//!
//! What counts as an edge of the graph:
//! - between files where neither module is an ancestor of the other (siblings, cousins): every
//!   such dependency;
//! - between an ancestor and a descendant: only `use` declarations that import for the file's own
//!   use (not `pub use` re-exports). A parent declaring `mod child` and the child using items of
//!   its parent is the normal shape of a tree; it is a cycle only when the parent also `use`s
//!   the child's items, the two then importing each other.
//!
//! Any strongly connected set of two or more files is a problem, reported with the names each
//! file takes from the next.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use syn::visit::Visit;

/// The module cycles of the crates rooted at `roots`, described for humans.
pub fn problems(roots: &[PathBuf]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for root in roots {
        let tree = Tree::load(root)?;
        for cycle in tree.cycles() {
            problems.push(tree.describe(&cycle));
        }
    }
    Ok(problems)
}

/// How a dependency was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A private `use` declaration.
    Use,
    /// A `use` with a visibility: it re-exports rather than imports for the file's own use.
    ReExport,
    /// A path in code.
    Path,
}

struct Module {
    name: String,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    /// Index into [`Tree::files`].
    file: usize,
}

struct SourceFile {
    path: PathBuf,
    /// Its outermost module.
    module: usize,
}

/// A path written in a module, before resolution.
struct Reference {
    module: usize,
    segments: Vec<String>,
    line: usize,
    kind: Kind,
}

/// One dependency of a file on another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: usize,
    to: usize,
    /// The item names taken, as written after the last module (`Error`, `mounts::Mount`, `*`).
    name: String,
    line: usize,
    kind: Kind,
}

#[derive(Default)]
struct Tree {
    root: PathBuf,
    modules: Vec<Module>,
    files: Vec<SourceFile>,
    references: Vec<Reference>,
}

impl Tree {
    /// Reads the module tree of the crate whose root file is `root`, and every path written in it.
    fn load(root: &Path) -> Result<Tree> {
        let mut tree = Tree {
            root: root.to_path_buf(),
            ..Tree::default()
        };
        tree.add_file(root, None, String::new())?;
        Ok(tree)
    }

    fn add_module(&mut self, name: String, parent: Option<usize>, file: usize) -> usize {
        let index = self.modules.len();
        self.modules.push(Module {
            name: name.clone(),
            parent,
            children: BTreeMap::new(),
            file,
        });
        if let Some(parent) = parent {
            self.modules[parent].children.insert(name, index);
        }
        index
    }

    /// Adds the module in file `path`, then its items and submodules.
    fn add_file(&mut self, path: &Path, parent: Option<usize>, name: String) -> Result<()> {
        let syntax = super::parse(path)?;
        let file = self.files.len();
        let module = self.add_module(name, parent, file);
        self.files.push(SourceFile {
            path: path.to_path_buf(),
            module,
        });
        let dir = path.parent().unwrap_or(Path::new("."));
        // A crate root and `mod.rs` keep their children beside them; `a.rs` keeps them in `a/`.
        let mod_rs = parent.is_none() || path.file_name().is_some_and(|n| n == "mod.rs");
        let children = if mod_rs {
            dir.to_path_buf()
        } else {
            dir.join(path.file_stem().unwrap_or_default())
        };
        self.add_items(&syntax.items, module, file, &children, dir)
    }

    /// Adds `items` of `module` (held in `file`): submodules, and the paths the others write.
    /// Submodule files are looked up in `children`; `#[path]` is relative to `dir`.
    fn add_items(
        &mut self,
        items: &[syn::Item],
        module: usize,
        file: usize,
        children: &Path,
        dir: &Path,
    ) -> Result<()> {
        for item in items {
            let syn::Item::Mod(declaration) = item else {
                let mut collector = Collector {
                    module,
                    found: Vec::new(),
                };
                collector.visit_item(item);
                self.references.extend(collector.found);
                continue;
            };
            let name = declaration.ident.to_string();
            if let Some((_, inner)) = &declaration.content {
                let child = self.add_module(name.clone(), Some(module), file);
                let nested = children.join(&name);
                self.add_items(inner, child, file, &nested, &nested)?;
                continue;
            }
            let candidates = match path_attribute(&declaration.attrs) {
                Some(path) => vec![dir.join(path)],
                None => vec![
                    children.join(format!("{name}.rs")),
                    children.join(&name).join("mod.rs"),
                ],
            };
            // A declaration whose file is missing does not compile (or is for another
            // platform); the compiler reports it, not tidy.
            if let Some(path) = candidates.into_iter().find(|p| p.is_file()) {
                self.add_file(&path, Some(module), name)?;
            }
        }
        Ok(())
    }

    fn is_ancestor(&self, ancestor: usize, mut module: usize) -> bool {
        while let Some(parent) = self.modules[module].parent {
            if parent == ancestor {
                return true;
            }
            module = parent;
        }
        false
    }

    /// Where `segments`, written in `module`, lead: the last module reached and the rest of
    /// the path. `None` for paths that do not start inside the crate.
    fn resolve(&self, module: usize, segments: &[String]) -> Option<(usize, Vec<String>)> {
        let (mut current, mut rest) = match segments.first().map(String::as_str)? {
            "crate" => (0, &segments[1..]),
            "self" => (module, &segments[1..]),
            "super" => {
                let mut current = self.modules[module].parent?;
                let mut rest = &segments[1..];
                while rest.first().is_some_and(|s| s == "super") {
                    current = self.modules[current].parent?;
                    rest = &rest[1..];
                }
                (current, rest)
            }
            first if self.modules[module].children.contains_key(first) => (module, segments),
            _ => return None,
        };
        while let Some(&child) = rest.first().and_then(|s| self.modules[current].children.get(s)) {
            current = child;
            rest = &rest[1..];
        }
        Some((current, rest.to_vec()))
    }

    /// Every dependency between two different files.
    fn edges(&self) -> Vec<Edge> {
        let mut edges = Vec::new();
        for reference in &self.references {
            let Some((target, rest)) = self.resolve(reference.module, &reference.segments) else {
                continue;
            };
            let (from, to) = (self.modules[reference.module].file, self.modules[target].file);
            if from == to {
                continue;
            }
            let name = if rest.is_empty() {
                self.modules[target].name.clone()
            } else {
                rest.join("::")
            };
            edges.push(Edge {
                from,
                to,
                name,
                line: reference.line,
                kind: reference.kind,
            });
        }
        edges.sort();
        edges.dedup();
        edges
    }

    /// Whether `edge` is part of the graph cycles are looked for in (see the module docs).
    fn counts(&self, edge: &Edge) -> bool {
        let (from, to) = (self.files[edge.from].module, self.files[edge.to].module);
        let lineage = self.is_ancestor(from, to) || self.is_ancestor(to, from);
        !lineage || edge.kind == Kind::Use
    }

    /// The sets of two or more files that reach each other, each sorted, in a stable order.
    fn cycles(&self) -> Vec<Vec<usize>> {
        let mut graph: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for edge in self.edges().into_iter().filter(|e| self.counts(e)) {
            graph.entry(edge.from).or_default().insert(edge.to);
        }
        let mut cycles: Vec<Vec<usize>> = strongly_connected(self.files.len(), &graph)
            .into_iter()
            .filter(|component| component.len() > 1)
            .collect();
        for cycle in &mut cycles {
            cycle.sort_by(|a, b| self.files[*a].path.cmp(&self.files[*b].path));
        }
        cycles.sort_by(|a, b| self.files[a[0]].path.cmp(&self.files[b[0]].path));
        cycles
    }

    /// A cycle with every edge inside it: which file takes which names from which.
    fn describe(&self, cycle: &[usize]) -> String {
        let mut taken: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();
        for edge in self.edges().into_iter().filter(|e| self.counts(e)) {
            if cycle.contains(&edge.from) && cycle.contains(&edge.to) {
                taken
                    .entry((edge.from, edge.to))
                    .or_default()
                    .insert(format!("{} (line {})", edge.name, edge.line));
            }
        }
        let files: Vec<String> = cycle
            .iter()
            .map(|f| self.files[*f].path.display().to_string())
            .collect();
        let mut text = format!(
            "module cycle in the crate of {} between {}:",
            self.root.display(),
            files.join(", ")
        );
        for ((from, to), names) in taken {
            let names: Vec<String> = names.into_iter().collect();
            text.push_str(&format!(
                "\n      {} uses {} from {}",
                self.files[from].path.display(),
                names.join(", "),
                self.files[to].path.display()
            ));
        }
        text
    }
}

/// The file a `#[path = "…"]` attribute names.
fn path_attribute(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|attr| match &attr.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Collects the paths written in one module's items (not in its submodules).
struct Collector {
    module: usize,
    found: Vec<Reference>,
}

impl Collector {
    fn push(&mut self, segments: Vec<String>, line: usize, kind: Kind) {
        self.found.push(Reference {
            module: self.module,
            segments,
            line,
            kind,
        });
    }

    /// Every path a `use` tree imports, as segments (a glob ends in `*`).
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree, kind: Kind) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree, kind);
                prefix.pop();
            }
            syn::UseTree::Name(name) => self.use_leaf(prefix, &name.ident, kind),
            syn::UseTree::Rename(rename) => self.use_leaf(prefix, &rename.ident, kind),
            syn::UseTree::Glob(glob) => {
                let mut segments = prefix.clone();
                segments.push("*".into());
                self.push(segments, glob.star_token.spans[0].start().line, kind);
            }
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree, kind);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &[String], ident: &syn::Ident, kind: Kind) {
        let mut segments = prefix.to_vec();
        // `use a::{self}` imports the module `a` itself.
        if ident != "self" || segments.is_empty() {
            segments.push(ident.to_string());
        }
        self.push(segments, ident.span().start().line, kind);
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let kind = match item.vis {
            syn::Visibility::Inherited => Kind::Use,
            _ => Kind::ReExport,
        };
        self.use_tree(&mut Vec::new(), &item.tree, kind);
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {
        // A module inside a function body: rare, and not part of the file tree.
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.len() > 1 {
            let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.push(segments, path.segments[0].ident.span().start().line, Kind::Path);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Macro arguments are tokens, not syntax: look for `crate::a::b` and `super::a` in them.
        let tokens: Vec<proc_macro2::TokenTree> = flatten(mac.tokens.clone());
        let mut i = 0;
        while i < tokens.len() {
            if let proc_macro2::TokenTree::Ident(ident) = &tokens[i]
                && (ident == "crate" || ident == "super")
            {
                let line = ident.span().start().line;
                let mut segments = vec![ident.to_string()];
                let mut j = i + 1;
                while let (
                    Some(proc_macro2::TokenTree::Punct(a)),
                    Some(proc_macro2::TokenTree::Punct(b)),
                    Some(proc_macro2::TokenTree::Ident(next)),
                ) = (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                {
                    if a.as_char() != ':' || b.as_char() != ':' {
                        break;
                    }
                    segments.push(next.to_string());
                    j += 3;
                }
                if segments.len() > 1 {
                    self.push(segments, line, Kind::Path);
                }
                i = j;
            } else {
                i += 1;
            }
        }
        syn::visit::visit_macro(self, mac);
    }
}

/// The tokens of `stream` with groups opened, in order.
fn flatten(stream: proc_macro2::TokenStream) -> Vec<proc_macro2::TokenTree> {
    let mut out = Vec::new();
    for token in stream {
        match token {
            proc_macro2::TokenTree::Group(group) => out.extend(flatten(group.stream())),
            other => out.push(other),
        }
    }
    out
}

/// Tarjan's strongly connected components of the graph over nodes `0..n`.
fn strongly_connected(n: usize, graph: &BTreeMap<usize, BTreeSet<usize>>) -> Vec<Vec<usize>> {
    struct State<'a> {
        graph: &'a BTreeMap<usize, BTreeSet<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        components: Vec<Vec<usize>>,
    }
    fn visit(state: &mut State<'_>, node: usize) {
        state.index[node] = Some(state.next);
        state.low[node] = state.next;
        state.next += 1;
        state.stack.push(node);
        state.on_stack[node] = true;
        for &next in state.graph.get(&node).into_iter().flatten() {
            match state.index[next] {
                None => {
                    visit(state, next);
                    state.low[node] = state.low[node].min(state.low[next]);
                }
                Some(index) if state.on_stack[next] => state.low[node] = state.low[node].min(index),
                Some(_) => {}
            }
        }
        if Some(state.low[node]) == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack[member] = false;
                component.push(member);
                if member == node {
                    break;
                }
            }
            state.components.push(component);
        }
    }
    let mut state = State {
        graph,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        components: Vec::new(),
    };
    for node in 0..n {
        if state.index[node].is_none() {
            visit(&mut state, node);
        }
    }
    state.components
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (path, text) into a temporary directory and returns the cycles of the
    /// crate rooted at `src/lib.rs` there, as sorted file names relative to `src/`.
    fn cycles(files: &[(&str, &str)]) -> Vec<Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let src = dir.path().join("src");
        let tree = Tree::load(&src.join("lib.rs")).unwrap();
        tree.cycles()
            .iter()
            .map(|cycle| {
                cycle
                    .iter()
                    .map(|f| {
                        tree.files[*f]
                            .path
                            .strip_prefix(&src)
                            .unwrap()
                            .display()
                            .to_string()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn siblings_importing_each_other_are_a_cycle() {
        let found = cycles(&[
            ("src/lib.rs", "mod a;\nmod b;\n"),
            ("src/a.rs", "use crate::b::B;\npub struct A;\n"),
            ("src/b.rs", "use super::a::A;\npub struct B;\n"),
        ]);
        assert_eq!(found, [["a.rs", "b.rs"]]);
    }

    #[test]
    fn a_ring_through_code_paths_and_macros_is_a_cycle() {
        let found = cycles(&[
            ("src/lib.rs", "mod a;\nmod b;\nmod c;\n"),
            ("src/a.rs", "pub fn f() { crate::b::g() }\n"),
            (
                "src/b.rs",
                "pub fn g() { let _ = format!(\"{}\", super::c::h()); }\n",
            ),
            ("src/c.rs", "pub fn h() -> u8 { use crate::a; a::f(); 1 }\n"),
        ]);
        assert_eq!(found, [["a.rs", "b.rs", "c.rs"]]);
    }

    #[test]
    fn a_child_using_its_parent_is_the_normal_tree() {
        let found = cycles(&[
            (
                "src/lib.rs",
                "mod ops;\npub use ops::Op;\npub struct Error;\nfn run() { ops::run() }\n",
            ),
            (
                "src/ops.rs",
                "mod inner;\nuse crate::Error;\npub struct Op;\npub fn run() {}\n",
            ),
            ("src/ops/inner.rs", "use super::Op;\nuse crate::Error;\n"),
        ]);
        assert_eq!(found, Vec::<Vec<String>>::new());
    }

    #[test]
    fn a_parent_and_a_child_using_each_other_are_a_cycle() {
        let found = cycles(&[
            ("src/lib.rs", "mod convert;\n"),
            (
                "src/convert.rs",
                "mod plan;\nuse plan::Plan;\npub struct Options;\n",
            ),
            ("src/convert/plan.rs", "use super::Options;\npub struct Plan;\n"),
        ]);
        // Sorted by path components: `convert/…` before `convert.rs`.
        assert_eq!(found, [["convert/plan.rs", "convert.rs"]]);
    }

    #[test]
    fn inline_modules_path_attributes_and_outside_paths() {
        let found = cycles(&[
            (
                "src/lib.rs",
                "#[path = \"elsewhere/x.rs\"]\nmod x;\nmod y;\n#[cfg(test)]\nmod tests { use super::*; use crate::y::Y; }\n",
            ),
            (
                "src/elsewhere/x.rs",
                "use std::fmt;\nuse crate::y::Y;\npub struct X;\n",
            ),
            (
                "src/y.rs",
                "pub mod deep { pub fn f() { crate::x::X; } }\npub struct Y;\n",
            ),
        ]);
        // y's inline module lives in y.rs, which thus uses x.rs: a cycle with x.rs.
        assert_eq!(found, [["elsewhere/x.rs", "y.rs"]]);
    }

    #[test]
    fn the_report_names_the_files_and_the_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "mod a;\nmod b;\n").unwrap();
        std::fs::write(dir.path().join("src/a.rs"), "use crate::b::{B, C};\n").unwrap();
        std::fs::write(dir.path().join("src/b.rs"), "\nuse super::a::*;\n").unwrap();
        let tree = Tree::load(&dir.path().join("src/lib.rs")).unwrap();
        let cycles = tree.cycles();
        let text = tree.describe(&cycles[0]);
        let a = dir.path().join("src/a.rs").display().to_string();
        let b = dir.path().join("src/b.rs").display().to_string();
        assert!(
            text.contains(&format!("{a} uses B (line 1), C (line 1) from {b}")),
            "{text}"
        );
        assert!(text.contains(&format!("{b} uses * (line 2) from {a}")), "{text}");
    }
}
