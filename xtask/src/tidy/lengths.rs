//! No function over [`MAX_LINES`] lines: the project's rule, applied to all code, tests
//! included (a long test is as hard to read as a long function).
//!
//! A function's length runs from the line of its `fn` keyword to the line of its closing
//! brace. Free functions, methods and trait methods with a default body count; so does every
//! function nested in another, on its own. Closures and code inside macro invocations
//! (`macro_rules!` bodies) are part of the function around them.

use std::path::{Path, PathBuf};

use anyhow::Result;
use syn::visit::Visit;

/// The most lines a function may have.
pub const MAX_LINES: usize = 120;

/// One function and its length.
#[derive(Debug, PartialEq, Eq)]
pub struct Function {
    /// The name, with the implemented type for methods (`Type::method`).
    pub name: String,
    /// The line of the `fn` keyword.
    pub line: usize,
    /// Lines from the `fn` keyword to the closing brace.
    pub lines: usize,
    /// Whether it is test code: under `tests/` or `benches/`, or in a `#[cfg(test)]` module or
    /// with a `#[test]`-like attribute.
    pub test: bool,
}

/// The functions over [`MAX_LINES`] in `files`, described for humans.
pub fn problems(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for file in files {
        let test_file = file
            .components()
            .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "benches");
        for function in functions(&super::parse(file)?, test_file) {
            if function.lines > MAX_LINES {
                problems.push(describe(file, &function));
            }
        }
    }
    Ok(problems)
}

fn describe(file: &Path, function: &Function) -> String {
    format!(
        "{}:{}: function {} is {} lines long (at most {MAX_LINES}){}",
        file.display(),
        function.line,
        function.name,
        function.lines,
        if function.test { " [test code]" } else { "" }
    )
}

/// Every function with a body in `file`.
pub fn functions(file: &syn::File, test_file: bool) -> Vec<Function> {
    let mut finder = Finder {
        found: Vec::new(),
        self_type: None,
        test: test_file,
    };
    finder.visit_file(file);
    finder.found
}

struct Finder {
    found: Vec<Function>,
    /// The type of the `impl` block being walked.
    self_type: Option<String>,
    /// Whether the code being walked is test code.
    test: bool,
}

impl Finder {
    fn record(
        &mut self,
        name: String,
        attrs: &[syn::Attribute],
        fn_token: &syn::token::Fn,
        block: &syn::Block,
    ) {
        let line = fn_token.span.start().line;
        let end = block.brace_token.span.close().end().line;
        self.found.push(Function {
            name,
            line,
            lines: end + 1 - line,
            test: self.test || is_test(attrs),
        });
    }

    /// Walks `f` with `test` set while inside it when `attrs` mark test code.
    fn within(&mut self, attrs: &[syn::Attribute], f: impl FnOnce(&mut Finder)) {
        let outer = self.test;
        self.test |= is_test(attrs);
        f(self);
        self.test = outer;
    }
}

/// Whether `attrs` mark test code: `#[cfg(test)]`, or a test attribute such as `#[test]` or
/// `#[tokio::test]`.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let path = attr.path();
        if path.is_ident("cfg") {
            let mut test = false;
            // `cfg(test)` or `cfg(all(test, ...))`: any `test` word inside.
            let _ = attr.parse_nested_meta(|meta| {
                test |= meta.path.is_ident("test");
                if meta.input.peek(syn::token::Paren) {
                    meta.parse_nested_meta(|inner| {
                        test |= inner.path.is_ident("test");
                        Ok(())
                    })?;
                }
                Ok(())
            });
            test
        } else {
            path.segments.last().is_some_and(|s| s.ident == "test")
        }
    })
}

impl<'ast> Visit<'ast> for Finder {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.record(
            item.sig.ident.to_string(),
            &item.attrs,
            &item.sig.fn_token,
            &item.block,
        );
        self.within(&item.attrs, |this| syn::visit::visit_item_fn(this, item));
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        let name = match &self.self_type {
            Some(ty) => format!("{ty}::{}", item.sig.ident),
            None => item.sig.ident.to_string(),
        };
        self.record(name, &item.attrs, &item.sig.fn_token, &item.block);
        self.within(&item.attrs, |this| syn::visit::visit_impl_item_fn(this, item));
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        if let Some(block) = &item.default {
            self.record(item.sig.ident.to_string(), &item.attrs, &item.sig.fn_token, block);
        }
        self.within(&item.attrs, |this| syn::visit::visit_trait_item_fn(this, item));
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        let outer = self.self_type.take();
        self.self_type = Some(type_name(&item.self_ty));
        self.within(&item.attrs, |this| syn::visit::visit_item_impl(this, item));
        self.self_type = outer;
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.within(&item.attrs, |this| syn::visit::visit_item_mod(this, item));
    }
}

/// The last path segment of a type (`Engine` for `crate::Engine<T>`), or `_` for others.
fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(path) => path
            .path
            .segments
            .last()
            .map_or_else(|| "_".to_string(), |s| s.ident.to_string()),
        syn::Type::Reference(reference) => type_name(&reference.elem),
        _ => "_".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(text: &str) -> Vec<(String, usize, usize, bool)> {
        functions(&syn::parse_file(text).unwrap(), false)
            .into_iter()
            .map(|f| (f.name, f.line, f.lines, f.test))
            .collect()
    }

    #[test]
    fn lengths_run_from_fn_to_the_closing_brace() {
        let text = "\
/// Doc comments and attributes do not count.
#[inline]
pub fn one() {}

fn three(
    a: u8,
) {
    // nested functions count on their own, and in the outer one
    fn inner() {
    }
}

struct S;
impl S {
    fn method(&self) {
        let _ = || {
            1
        };
    }
}

trait T {
    fn required(&self);
    fn provided(&self) {
    }
}
";
        assert_eq!(
            lengths(text),
            [
                ("one".to_string(), 3, 1, false),
                ("three".to_string(), 5, 7, false),
                ("inner".to_string(), 9, 2, false),
                ("S::method".to_string(), 15, 5, false),
                ("provided".to_string(), 24, 2, false),
            ]
        );
    }

    #[test]
    fn test_code_is_marked() {
        let text = "\
fn plain() {}
#[test]
fn a_test() {}
#[tokio::test]
async fn an_async_test() {}
#[cfg(test)]
mod tests {
    fn helper() {}
}
#[cfg(all(test, unix))]
fn unix_helper() {}
#[cfg(unix)]
fn not_a_test() {}
";
        let marked: Vec<(String, bool)> = lengths(text).into_iter().map(|(n, _, _, t)| (n, t)).collect();
        assert_eq!(
            marked,
            [
                ("plain".to_string(), false),
                ("a_test".to_string(), true),
                ("an_async_test".to_string(), true),
                ("helper".to_string(), true),
                ("unix_helper".to_string(), true),
                ("not_a_test".to_string(), false),
            ]
        );
    }
}
