//! The engine's LLB ops end to end, solved from LLB built with the `llb` builder: HTTP and git
//! sources, merge ops, exec mounts and the options of copies. Privileged: they need root, overlayfs and runc.

mod concurrency;
mod copy;
mod git;
mod http;
mod merge;
mod mounts;
mod support;
