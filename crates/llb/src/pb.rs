//! The LLB wire schema, as prost messages.
//!
//! These hand-written prost structs are the schema: there is no `.proto` file to drift from, and
//! no code generator in the build. The shape and field numbers follow BuildKit's `ops.proto`
//! closely so that dumps can be compared, but kiln does not claim wire compatibility with it.
//!
//! Canonical encoding rules (they make digests stable):
//! - prost writes fields in tag order and omits proto3 default values;
//! - every map is a `BTreeMap`, so entries are written sorted by key;
//! - no floats and no unknown-field pass-through in any hashed message.
//!
//! Changing a field number or meaning changes digests: bump `crate::FORMAT_VERSION`.

// Oneof variants mirror the wire schema; boxing them would only complicate every user.
#![allow(clippy::large_enum_variant)]

use std::collections::BTreeMap;

/// One vertex of the build graph.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Op {
    /// Inputs: outputs of other ops, by digest and output index.
    #[prost(message, repeated, tag = "1")]
    pub inputs: Vec<Input>,
    /// The op body. An op without a body is the terminator that names the graph's result.
    #[prost(oneof = "op::Kind", tags = "2, 3, 4, 6")]
    pub kind: Option<op::Kind>,
    /// The platform the op runs for.
    #[prost(message, optional, tag = "10")]
    pub platform: Option<Platform>,
}

/// Op bodies.
pub mod op {
    /// The body of an [`Op`](super::Op).
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Kind {
        /// Run a process.
        #[prost(message, tag = "2")]
        Exec(super::ExecOp),
        /// Produce a filesystem from outside the graph (image, local directory, …).
        #[prost(message, tag = "3")]
        Source(super::SourceOp),
        /// Edit files.
        #[prost(message, tag = "4")]
        File(super::FileOp),
        /// Union of inputs, later ones on top.
        #[prost(message, tag = "6")]
        Merge(super::MergeOp),
    }
}

/// A reference to output `index` of the op with digest `digest`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, ::prost::Message)]
pub struct Input {
    /// The digest of the producing op (`sha256:…`).
    #[prost(string, tag = "1")]
    pub digest: String,
    /// Which output of that op.
    #[prost(int64, tag = "2")]
    pub index: i64,
}

/// Target platform of an op.
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub struct Platform {
    /// `amd64`, `arm64`, …
    #[prost(string, tag = "1")]
    pub architecture: String,
    /// `linux`, `windows`.
    #[prost(string, tag = "2")]
    pub os: String,
    /// `v7`, `v8`, …
    #[prost(string, tag = "3")]
    pub variant: String,
    /// Windows OS version.
    #[prost(string, tag = "4")]
    pub os_version: String,
}

/// Runs a process over a set of mounts.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ExecOp {
    /// The process.
    #[prost(message, optional, tag = "1")]
    pub meta: Option<Meta>,
    /// Mounts; the one at `/` is the root filesystem.
    #[prost(message, repeated, tag = "2")]
    pub mounts: Vec<Mount>,
    /// Network mode.
    #[prost(enumeration = "NetMode", tag = "3")]
    pub network: i32,
    /// Security mode.
    #[prost(enumeration = "SecurityMode", tag = "4")]
    pub security: i32,
    /// Secrets exposed as environment variables.
    #[prost(message, repeated, tag = "5")]
    pub secretenv: Vec<SecretEnv>,
}

/// A secret given to a process as an environment variable.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SecretEnv {
    /// The secret's id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The variable name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// A missing secret is not an error.
    #[prost(bool, tag = "3")]
    pub optional: bool,
}

/// The process of an exec op.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Meta {
    /// argv.
    #[prost(string, repeated, tag = "1")]
    pub args: Vec<String>,
    /// `KEY=value` entries, in order.
    #[prost(string, repeated, tag = "2")]
    pub env: Vec<String>,
    /// Working directory.
    #[prost(string, tag = "3")]
    pub cwd: String,
    /// `user[:group]`, resolved in the root filesystem at run time.
    #[prost(string, tag = "4")]
    pub user: String,
    /// Proxy variables: given to the process but not part of its cache key.
    #[prost(message, optional, tag = "5")]
    pub proxy_env: Option<ProxyEnv>,
    /// Extra `/etc/hosts` entries (`--add-host`), in order.
    #[prost(message, repeated, tag = "6")]
    pub extra_hosts: Vec<HostIp>,
    /// Container host name.
    #[prost(string, tag = "7")]
    pub hostname: String,
    /// Resource limits of the process (`--ulimit`), replacing the runtime's defaults by name.
    #[prost(message, repeated, tag = "9")]
    pub ulimit: Vec<Ulimit>,
}

/// One resource limit of a process.
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub struct Ulimit {
    /// The resource, lower case without `RLIMIT_`: `nofile`, `nproc`, `core`, ...
    #[prost(string, tag = "1")]
    pub name: String,
    /// The soft limit (-1: unlimited).
    #[prost(int64, tag = "2")]
    pub soft: i64,
    /// The hard limit (-1: unlimited).
    #[prost(int64, tag = "3")]
    pub hard: i64,
}

/// One extra `/etc/hosts` entry of a process.
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub struct HostIp {
    /// The host name.
    #[prost(string, tag = "1")]
    pub host: String,
    /// Its address, IPv4 or IPv6.
    #[prost(string, tag = "2")]
    pub ip: String,
}

/// Proxy settings passed to a process.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ProxyEnv {
    /// `HTTP_PROXY`.
    #[prost(string, tag = "1")]
    pub http_proxy: String,
    /// `HTTPS_PROXY`.
    #[prost(string, tag = "2")]
    pub https_proxy: String,
    /// `FTP_PROXY`.
    #[prost(string, tag = "3")]
    pub ftp_proxy: String,
    /// `NO_PROXY`.
    #[prost(string, tag = "4")]
    pub no_proxy: String,
    /// `ALL_PROXY`.
    #[prost(string, tag = "5")]
    pub all_proxy: String,
}

/// Network mode of an exec op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum NetMode {
    /// The engine's default network.
    Unset = 0,
    /// The host's network namespace.
    Host = 1,
    /// Only loopback.
    None = 2,
}

/// Security mode of an exec op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum SecurityMode {
    /// Default sandbox.
    Sandbox = 0,
    /// Privileged.
    Insecure = 1,
}

/// Kind of an exec mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum MountType {
    /// A bind mount of an input (or scratch).
    Bind = 0,
    /// A secret file.
    Secret = 1,
    /// An ssh agent socket.
    Ssh = 2,
    /// A persistent cache directory.
    Cache = 3,
    /// A tmpfs.
    Tmpfs = 4,
}

/// One mount of an exec op.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Mount {
    /// Index into the op's inputs, or -1 for an empty directory.
    #[prost(int64, tag = "1")]
    pub input: i64,
    /// Sub-path of the input to mount.
    #[prost(string, tag = "2")]
    pub selector: String,
    /// Where to mount it.
    #[prost(string, tag = "3")]
    pub dest: String,
    /// Index of the output this mount produces, or -1 when its changes are thrown away.
    #[prost(int64, tag = "4")]
    pub output: i64,
    /// Read-only mount.
    #[prost(bool, tag = "5")]
    pub readonly: bool,
    /// Mount kind.
    #[prost(enumeration = "MountType", tag = "6")]
    pub mount_type: i32,
    /// tmpfs options.
    #[prost(message, optional, tag = "19")]
    pub tmpfs_opt: Option<TmpfsOpt>,
    /// Cache mount options.
    #[prost(message, optional, tag = "20")]
    pub cache_opt: Option<CacheOpt>,
    /// Secret mount options.
    #[prost(message, optional, tag = "21")]
    pub secret_opt: Option<SecretOpt>,
    /// SSH agent mount options.
    #[prost(message, optional, tag = "22")]
    pub ssh_opt: Option<SshOpt>,
}

/// Options of a tmpfs mount.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TmpfsOpt {
    /// Size limit in bytes (0 = default).
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// How concurrent users share a cache mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum CacheSharing {
    /// Everyone uses the same directory at once.
    Shared = 0,
    /// Concurrent users get their own copy.
    Private = 1,
    /// Users take turns.
    Locked = 2,
}

/// Options of a cache mount.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CacheOpt {
    /// Identity of the cache.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Sharing mode.
    #[prost(enumeration = "CacheSharing", tag = "2")]
    pub sharing: i32,
}

/// Options of a secret mount.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SecretOpt {
    /// The secret's id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Owner uid.
    #[prost(uint32, tag = "2")]
    pub uid: u32,
    /// Owner gid.
    #[prost(uint32, tag = "3")]
    pub gid: u32,
    /// Permission bits.
    #[prost(uint32, tag = "4")]
    pub mode: u32,
    /// A missing secret is not an error.
    #[prost(bool, tag = "5")]
    pub optional: bool,
}

/// Options of an SSH agent socket mount.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SshOpt {
    /// The forwarded agent's id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Owner uid.
    #[prost(uint32, tag = "2")]
    pub uid: u32,
    /// Owner gid.
    #[prost(uint32, tag = "3")]
    pub gid: u32,
    /// Permission bits.
    #[prost(uint32, tag = "4")]
    pub mode: u32,
    /// A missing agent is not an error.
    #[prost(bool, tag = "5")]
    pub optional: bool,
}

/// Produces a filesystem from outside the graph.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SourceOp {
    /// `docker-image://ref`, `local://name`, …
    #[prost(string, tag = "1")]
    pub identifier: String,
    /// Source-specific attributes (see [`crate::attr`]).
    #[prost(btree_map = "string, string", tag = "2")]
    pub attrs: BTreeMap<String, String>,
}

/// A sequence of file actions.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FileOp {
    /// The actions, in order.
    #[prost(message, repeated, tag = "2")]
    pub actions: Vec<FileAction>,
}

/// One file action. Input indexes at or above the op's input count refer to the result of an
/// earlier action (`index - inputs.len()`).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FileAction {
    /// The filesystem acted on (-1 = empty).
    #[prost(int64, tag = "1")]
    pub input: i64,
    /// The filesystem copied from (-1 = none).
    #[prost(int64, tag = "2")]
    pub secondary_input: i64,
    /// The output index this action's result becomes, or -1.
    #[prost(int64, tag = "3")]
    pub output: i64,
    /// The action.
    #[prost(oneof = "file_action::Action", tags = "4, 5, 6, 7, 8")]
    pub action: Option<file_action::Action>,
}

/// File action bodies.
pub mod file_action {
    /// The body of a [`FileAction`](super::FileAction).
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Action {
        /// Copy from the secondary input.
        #[prost(message, tag = "4")]
        Copy(super::FileActionCopy),
        /// Create a file.
        #[prost(message, tag = "5")]
        Mkfile(super::FileActionMkFile),
        /// Create a directory.
        #[prost(message, tag = "6")]
        Mkdir(super::FileActionMkDir),
        /// Remove a path.
        #[prost(message, tag = "7")]
        Rm(super::FileActionRm),
        /// Create a symlink.
        #[prost(message, tag = "8")]
        Symlink(super::FileActionSymlink),
    }
}

/// Copy `src` of the secondary input to `dest` of the input.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FileActionCopy {
    /// Source path (may contain wildcards when `allow_wildcard`).
    #[prost(string, tag = "1")]
    pub src: String,
    /// Destination path.
    #[prost(string, tag = "2")]
    pub dest: String,
    /// New owner of the copied files; unset keeps the source ownership.
    #[prost(message, optional, tag = "3")]
    pub owner: Option<ChownOpt>,
    /// New permission bits, or -1 to keep them.
    #[prost(int32, tag = "4")]
    pub mode: i32,
    /// Follow a symlink named by `src`.
    #[prost(bool, tag = "5")]
    pub follow_symlink: bool,
    /// When `src` is a directory, copy its contents rather than the directory itself.
    #[prost(bool, tag = "6")]
    pub dir_copy_contents: bool,
    /// Extract archives as docker's ADD does.
    #[prost(bool, tag = "7")]
    pub attempt_unpack_docker_compatibility: bool,
    /// Create missing parents of `dest`.
    #[prost(bool, tag = "8")]
    pub create_dest_path: bool,
    /// Interpret wildcards in `src`.
    #[prost(bool, tag = "9")]
    pub allow_wildcard: bool,
    /// A wildcard matching nothing is not an error.
    #[prost(bool, tag = "10")]
    pub allow_empty_wildcard: bool,
    /// Modification time for created files (Unix seconds), or -1 to keep them.
    #[prost(int64, tag = "11")]
    pub timestamp: i64,
    /// Only copy paths matching these patterns.
    #[prost(string, repeated, tag = "12")]
    pub include_patterns: Vec<String>,
    /// Skip paths matching these patterns.
    #[prost(string, repeated, tag = "13")]
    pub exclude_patterns: Vec<String>,
    /// Replace existing destination paths even when their type differs.
    #[prost(bool, tag = "14")]
    pub always_replace_existing_dest_paths: bool,
    /// Symbolic mode (`u+x`), used when `mode` is -1.
    #[prost(string, tag = "15")]
    pub mode_str: String,
    /// Absolute paths in the source filesystem that must exist (copies that select by pattern).
    #[prost(string, repeated, tag = "16")]
    pub required_paths: Vec<String>,
}

/// Create a file with the given contents.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FileActionMkFile {
    /// Path.
    #[prost(string, tag = "1")]
    pub path: String,
    /// Permission bits.
    #[prost(int32, tag = "2")]
    pub mode: i32,
    /// Contents.
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
    /// Owner.
    #[prost(message, optional, tag = "4")]
    pub owner: Option<ChownOpt>,
    /// Modification time (Unix seconds), or -1 for now.
    #[prost(int64, tag = "5")]
    pub timestamp: i64,
}

/// Create a directory.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FileActionMkDir {
    /// Path.
    #[prost(string, tag = "1")]
    pub path: String,
    /// Permission bits.
    #[prost(int32, tag = "2")]
    pub mode: i32,
    /// Create missing parents (and do not fail when it exists).
    #[prost(bool, tag = "3")]
    pub make_parents: bool,
    /// Owner.
    #[prost(message, optional, tag = "4")]
    pub owner: Option<ChownOpt>,
    /// Modification time (Unix seconds), or -1 for now.
    #[prost(int64, tag = "5")]
    pub timestamp: i64,
}

/// Remove a path.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FileActionRm {
    /// Path.
    #[prost(string, tag = "1")]
    pub path: String,
    /// A missing path is not an error.
    #[prost(bool, tag = "2")]
    pub allow_not_found: bool,
    /// Interpret wildcards in `path`.
    #[prost(bool, tag = "3")]
    pub allow_wildcard: bool,
}

/// Create a symlink.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FileActionSymlink {
    /// Link target.
    #[prost(string, tag = "1")]
    pub oldpath: String,
    /// Link path.
    #[prost(string, tag = "2")]
    pub newpath: String,
    /// Owner.
    #[prost(message, optional, tag = "3")]
    pub owner: Option<ChownOpt>,
    /// Modification time (Unix seconds), or -1 for now.
    #[prost(int64, tag = "4")]
    pub timestamp: i64,
}

/// New ownership for file actions.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ChownOpt {
    /// User.
    #[prost(message, optional, tag = "1")]
    pub user: Option<UserOpt>,
    /// Group; unset means the user's primary group.
    #[prost(message, optional, tag = "2")]
    pub group: Option<UserOpt>,
}

/// A user or group, by id or by name.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct UserOpt {
    /// Which form.
    #[prost(oneof = "user_opt::User", tags = "1, 2")]
    pub user: Option<user_opt::User>,
}

/// [`UserOpt`] forms.
pub mod user_opt {
    /// A user or group.
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum User {
        /// Resolved from `/etc/passwd` or `/etc/group` of an input.
        #[prost(message, tag = "1")]
        ByName(super::NamedUserOpt),
        /// Numeric id.
        #[prost(uint32, tag = "2")]
        ById(u32),
    }
}

/// A user or group name resolved in the filesystem of an input.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct NamedUserOpt {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Input whose `/etc/passwd`/`/etc/group` resolves it.
    #[prost(int64, tag = "2")]
    pub input: i64,
}

/// Layer-wise union of inputs.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct MergeOp {
    /// Input indexes, bottom first.
    #[prost(int64, repeated, tag = "1")]
    pub inputs: Vec<i64>,
}

/// A serialised build graph.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Definition {
    /// Encoded [`Op`]s in topological order, inputs first; the last one is the terminator.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub def: Vec<Vec<u8>>,
    /// Metadata keyed by op digest; not part of any digest.
    #[prost(btree_map = "string, message", tag = "2")]
    pub metadata: BTreeMap<String, OpMetadata>,
    /// Source map: where each op came from.
    #[prost(message, optional, tag = "3")]
    pub source: Option<Source>,
}

/// Per-op metadata that does not affect its digest.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct OpMetadata {
    /// Never use a cached result for this op.
    #[prost(bool, tag = "1")]
    pub ignore_cache: bool,
    /// Human descriptions (`llb.customname` is the progress name).
    #[prost(btree_map = "string, string", tag = "2")]
    pub description: BTreeMap<String, String>,
}

/// Source files and the locations of ops in them.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Source {
    /// Locations keyed by op digest.
    #[prost(btree_map = "string, message", tag = "1")]
    pub locations: BTreeMap<String, Locations>,
    /// Source files referenced by index.
    #[prost(message, repeated, tag = "2")]
    pub infos: Vec<SourceInfo>,
}

/// All locations of one op.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Locations {
    /// Locations.
    #[prost(message, repeated, tag = "1")]
    pub locations: Vec<Location>,
}

/// A source file.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct SourceInfo {
    /// File name, e.g. `Dockerfile`.
    #[prost(string, tag = "1")]
    pub filename: String,
    /// Contents.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    /// Language, e.g. `Dockerfile`.
    #[prost(string, tag = "3")]
    pub language: String,
}

/// Line ranges in one source file.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Location {
    /// Index into [`Source::infos`].
    #[prost(int32, tag = "1")]
    pub source_index: i32,
    /// Ranges.
    #[prost(message, repeated, tag = "2")]
    pub ranges: Vec<Range>,
}

/// An inclusive range of positions.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Range {
    /// Start.
    #[prost(message, optional, tag = "1")]
    pub start: Option<Position>,
    /// End.
    #[prost(message, optional, tag = "2")]
    pub end: Option<Position>,
}

/// A position: 1-based line, 0-based character.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct Position {
    /// Line (1-based).
    #[prost(int32, tag = "1")]
    pub line: i32,
    /// Character (0-based).
    #[prost(int32, tag = "2")]
    pub character: i32,
}
