//! Building graphs: ops are nodes shared through [`Output`] handles; [`Definition::marshal`]
//! turns the sub-graph under a result into the canonical wire form.
//!
//! Nodes are immutable once built and shared with `Arc`, so a stage's state can be reused by
//! any number of later ops (two stages copying from a third share its nodes, and therefore its
//! digests, which is what lets the solver run them once).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use oci::Digest;
use prost::Message;

use crate::pb;

/// A handle on one output of an op.
#[derive(Clone)]
pub struct Output {
    node: Arc<Node>,
    index: i64,
}

/// Where in a source file an op came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRange {
    /// Index into the definition's source infos.
    pub source_index: i32,
    /// First line (1-based).
    pub start_line: i32,
    /// Last line (1-based, inclusive).
    pub end_line: i32,
}

/// Options that do not change what an op does: names, cache control, source locations.
#[derive(Clone, Debug, Default)]
pub struct OpOptions {
    /// The name shown in progress output (`llb.customname`).
    pub description: Option<String>,
    /// Never use a cached result.
    pub ignore_cache: bool,
    /// Source locations.
    pub locations: Vec<SourceRange>,
    /// Platform the op runs for.
    pub platform: Option<oci::Platform>,
}

struct Node {
    kind: pb::op::Kind,
    inputs: Vec<Output>,
    options: OpOptions,
    encoded: OnceLock<(Digest, Arc<[u8]>)>,
}

impl Node {
    fn new(kind: pb::op::Kind, inputs: Vec<Output>, options: OpOptions) -> Arc<Node> {
        Arc::new(Node {
            kind,
            inputs,
            options,
            encoded: OnceLock::new(),
        })
    }

    /// The canonical bytes of this op and their digest, computed once. The inputs' encodings
    /// come first, found by an explicit walk rather than by recursion, so that a chain of any
    /// length (a stage of 100 000 RUNs) never runs out of stack.
    fn encoded(&self) -> &(Digest, Arc<[u8]>) {
        if let Some(encoded) = self.encoded.get() {
            return encoded;
        }
        // Post-order: a node is encoded once every input it has is.
        let mut stack: Vec<(Arc<Node>, bool)> = self
            .inputs
            .iter()
            .filter(|i| i.node.encoded.get().is_none())
            .map(|i| (i.node.clone(), false))
            .collect();
        while let Some((node, expanded)) = stack.pop() {
            if node.encoded.get().is_some() {
                continue;
            }
            if expanded {
                node.encode_shallow();
                continue;
            }
            stack.push((node.clone(), true));
            for input in &node.inputs {
                if input.node.encoded.get().is_none() {
                    stack.push((input.node.clone(), false));
                }
            }
        }
        self.encode_shallow()
    }

    /// Encodes this op, whose inputs must be encoded already.
    fn encode_shallow(&self) -> &(Digest, Arc<[u8]>) {
        self.encoded.get_or_init(|| {
            let op = pb::Op {
                inputs: self
                    .inputs
                    .iter()
                    .map(|i| pb::Input {
                        digest: i.node.encode_shallow().0.to_string(),
                        index: i.index,
                    })
                    .collect(),
                kind: Some(self.kind.clone()),
                platform: self.options.platform.as_ref().map(platform_to_pb),
            };
            let bytes = op.encode_to_vec();
            (Digest::of(&bytes), bytes.into())
        })
    }
}

impl Drop for Node {
    /// Drops the graph under this node by an explicit walk: the default drop would recurse
    /// down a chain of inputs and overflow the stack on a long one.
    fn drop(&mut self) {
        let mut stack: Vec<Arc<Node>> = self.inputs.drain(..).map(|o| o.node).collect();
        while let Some(node) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(node) {
                stack.extend(node.inputs.drain(..).map(|o| o.node));
            }
        }
    }
}

/// Converts an OCI platform into its LLB form.
pub fn platform_to_pb(p: &oci::Platform) -> pb::Platform {
    pb::Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone().unwrap_or_default(),
        os_version: p.os_version.clone().unwrap_or_default(),
    }
}

impl Output {
    /// The digest of the op producing this output.
    pub fn digest(&self) -> Digest {
        self.node.encoded().0.clone()
    }

    /// The output index.
    pub fn index(&self) -> i64 {
        self.index
    }

    /// A source op: `docker-image://…`, `local://…`, …
    pub fn source(
        identifier: impl Into<String>,
        attrs: BTreeMap<String, String>,
        options: OpOptions,
    ) -> Output {
        let kind = pb::op::Kind::Source(pb::SourceOp {
            identifier: identifier.into(),
            attrs,
        });
        Output {
            node: Node::new(kind, Vec::new(), options),
            index: 0,
        }
    }

    /// A merge of `inputs`, later ones on top.
    pub fn merge(inputs: Vec<Output>, options: OpOptions) -> Output {
        let indexes = (0..inputs.len() as i64).collect();
        let kind = pb::op::Kind::Merge(pb::MergeOp { inputs: indexes });
        Output {
            node: Node::new(kind, inputs, options),
            index: 0,
        }
    }
}

/// The inputs of an op being built, indexed so that adding one costs the same however many
/// there are. Equal outputs (same op digest and output index) share one input.
#[derive(Default)]
struct Inputs {
    list: Vec<Output>,
    index: HashMap<(Digest, i64), i64>,
}

impl Inputs {
    /// Finds or adds `input`, returning its index.
    fn add(&mut self, input: &Output) -> i64 {
        let next = self.list.len() as i64;
        let index = *self.index.entry((input.digest(), input.index)).or_insert(next);
        if index == next {
            self.list.push(input.clone());
        }
        index
    }
}

/// Builds an exec op.
pub struct Exec {
    op: pb::ExecOp,
    inputs: Inputs,
    outputs: i64,
}

/// How an exec mount is attached.
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// Sub-path of the input to mount.
    pub selector: String,
    /// Read-only.
    pub readonly: bool,
    /// Whether the mount's changes become an output of the op.
    pub output: bool,
    /// What kind of mount.
    pub kind: MountKind,
}

/// The kind of an exec mount and its options.
#[derive(Clone, Debug, Default)]
pub enum MountKind {
    /// A bind mount of the input (or an empty directory).
    #[default]
    Bind,
    /// A persistent cache directory, seeded from the input when it is first created.
    Cache(pb::CacheOpt),
    /// A tmpfs.
    Tmpfs(pb::TmpfsOpt),
    /// A secret file.
    Secret(pb::SecretOpt),
    /// An SSH agent socket.
    Ssh(pb::SshOpt),
}

impl Exec {
    /// An exec of `meta` with the given network mode.
    pub fn new(meta: pb::Meta, network: pb::NetMode, security: pb::SecurityMode) -> Exec {
        Exec {
            op: pb::ExecOp {
                meta: Some(meta),
                mounts: Vec::new(),
                network: network as i32,
                security: security as i32,
                secretenv: Vec::new(),
            },
            inputs: Inputs::default(),
            outputs: 0,
        }
    }

    /// Adds a bind mount of `input` (`None` = empty directory) at `dest`. Returns the output
    /// index the mount produces, if it produces one.
    pub fn mount(&mut self, dest: &str, input: Option<&Output>, options: MountOptions) -> Option<i64> {
        let input_index = input.map_or(-1, |i| self.inputs.add(i));
        let output = if options.output && !options.readonly {
            self.outputs += 1;
            Some(self.outputs - 1)
        } else {
            None
        };
        let mut mount = pb::Mount {
            input: input_index,
            selector: options.selector,
            dest: dest.to_string(),
            output: output.unwrap_or(-1),
            readonly: options.readonly,
            mount_type: pb::MountType::Bind as i32,
            ..Default::default()
        };
        match options.kind {
            MountKind::Bind => {}
            MountKind::Cache(opt) => {
                mount.mount_type = pb::MountType::Cache as i32;
                mount.cache_opt = Some(opt);
            }
            MountKind::Tmpfs(opt) => {
                mount.mount_type = pb::MountType::Tmpfs as i32;
                mount.tmpfs_opt = Some(opt);
            }
            MountKind::Secret(opt) => {
                mount.mount_type = pb::MountType::Secret as i32;
                mount.secret_opt = Some(opt);
            }
            MountKind::Ssh(opt) => {
                mount.mount_type = pb::MountType::Ssh as i32;
                mount.ssh_opt = Some(opt);
            }
        }
        self.op.mounts.push(mount);
        output
    }

    /// Exposes a secret to the process as an environment variable.
    pub fn secret_env(&mut self, secret: pb::SecretEnv) {
        self.op.secretenv.push(secret);
    }

    /// Finishes the op. Returns a handle per output, in output order.
    pub fn finish(self, options: OpOptions) -> Vec<Output> {
        let node = Node::new(pb::op::Kind::Exec(self.op), self.inputs.list, options);
        (0..self.outputs)
            .map(|index| Output {
                node: node.clone(),
                index,
            })
            .collect()
    }
}

/// Builds a file op as a chain of actions, each acting on the previous one's result.
pub struct FileChain {
    inputs: Inputs,
    actions: Vec<pb::FileAction>,
    base: i64,
}

impl FileChain {
    /// A chain acting on `base` (`None` = empty filesystem).
    pub fn new(base: Option<&Output>) -> FileChain {
        let mut inputs = Inputs::default();
        let base = base.map_or(-1, |b| inputs.add(b));
        FileChain {
            inputs,
            actions: Vec::new(),
            base,
        }
    }

    /// The input the next action acts on: the base for the first, else the previous result.
    fn current(&self) -> i64 {
        if self.actions.is_empty() {
            self.base
        } else {
            -2 - (self.actions.len() as i64 - 1)
        }
    }

    fn push(&mut self, secondary: Option<&Output>, action: pb::file_action::Action) {
        let input = self.current();
        let secondary_input = secondary.map_or(-1, |s| self.inputs.add(s));
        self.actions.push(pb::FileAction {
            input,
            secondary_input,
            output: -1,
            action: Some(action),
        });
    }

    /// Creates a directory.
    pub fn mkdir(mut self, mkdir: pb::FileActionMkDir) -> Self {
        self.push(None, pb::file_action::Action::Mkdir(mkdir));
        self
    }

    /// Creates a file.
    pub fn mkfile(mut self, mkfile: pb::FileActionMkFile) -> Self {
        self.push(None, pb::file_action::Action::Mkfile(mkfile));
        self
    }

    /// Removes a path.
    pub fn rm(mut self, rm: pb::FileActionRm) -> Self {
        self.push(None, pb::file_action::Action::Rm(rm));
        self
    }

    /// Copies from `source` (`None` = empty filesystem).
    pub fn copy(mut self, source: Option<&Output>, copy: pb::FileActionCopy) -> Self {
        self.push(source, pb::file_action::Action::Copy(copy));
        self
    }

    /// Finishes the op; its single output is the result of the last action. A chain with no
    /// action returns its base unchanged.
    pub fn finish(mut self, options: OpOptions) -> Option<Output> {
        if self.actions.is_empty() {
            return usize::try_from(self.base)
                .ok()
                .map(|i| self.inputs.list[i].clone());
        }
        // Chain references were written as placeholders (-2 - action index) because the number
        // of inputs was not known yet; now rewrite them as `inputs.len() + action index`.
        let n_inputs = self.inputs.list.len() as i64;
        for action in &mut self.actions {
            if action.input <= -2 {
                action.input = n_inputs + (-2 - action.input);
            }
        }
        if let Some(last) = self.actions.last_mut() {
            last.output = 0;
        }
        let node = Node::new(
            pb::op::Kind::File(pb::FileOp {
                actions: self.actions,
            }),
            self.inputs.list,
            options,
        );
        Some(Output { node, index: 0 })
    }
}

/// A marshalled graph ready to be sent or solved.
#[derive(Clone, Debug)]
pub struct Definition {
    /// The wire form.
    pub pb: pb::Definition,
}

impl Definition {
    /// Serialises the graph under `root` (`None` = an empty result) with the given source files.
    ///
    /// Ops appear in depth-first post-order (inputs before users), each once, followed by the
    /// terminator op naming the result.
    pub fn marshal(root: Option<&Output>, sources: Vec<pb::SourceInfo>) -> Definition {
        let mut def = pb::Definition::default();
        let mut seen = BTreeMap::<Digest, ()>::new();
        let mut locations: BTreeMap<String, pb::Locations> = BTreeMap::new();
        // Iterative post-order walk, so very long chains cannot overflow the stack.
        if let Some(root) = root {
            let mut stack: Vec<(Arc<Node>, bool)> = vec![(root.node.clone(), false)];
            while let Some((node, expanded)) = stack.pop() {
                let (digest, bytes) = node.encoded().clone();
                if expanded {
                    if seen.insert(digest.clone(), ()).is_some() {
                        continue;
                    }
                    def.def.push(bytes.to_vec());
                    let key = digest.to_string();
                    let options = &node.options;
                    if options.description.is_some() || options.ignore_cache {
                        let mut description = BTreeMap::new();
                        if let Some(d) = &options.description {
                            description.insert(crate::attr::CUSTOM_NAME.to_string(), d.clone());
                        }
                        def.metadata.insert(
                            key.clone(),
                            pb::OpMetadata {
                                ignore_cache: options.ignore_cache,
                                description,
                            },
                        );
                    }
                    if !options.locations.is_empty() {
                        let entry = locations.entry(key).or_default();
                        for l in &options.locations {
                            entry.locations.push(pb::Location {
                                source_index: l.source_index,
                                ranges: vec![pb::Range {
                                    start: Some(pb::Position {
                                        line: l.start_line,
                                        character: 0,
                                    }),
                                    end: Some(pb::Position {
                                        line: l.end_line,
                                        character: 0,
                                    }),
                                }],
                            });
                        }
                    }
                    continue;
                }
                if seen.contains_key(&digest) {
                    continue;
                }
                stack.push((node.clone(), true));
                for input in node.inputs.iter().rev() {
                    stack.push((input.node.clone(), false));
                }
            }
        }
        let terminator = pb::Op {
            inputs: root
                .map(|r| {
                    vec![pb::Input {
                        digest: r.digest().to_string(),
                        index: r.index,
                    }]
                })
                .unwrap_or_default(),
            kind: None,
            platform: None,
        };
        def.def.push(terminator.encode_to_vec());
        if !sources.is_empty() || !locations.is_empty() {
            def.source = Some(pb::Source {
                locations,
                infos: sources,
            });
        }
        Definition { pb: def }
    }

    /// The wire bytes of the definition.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.pb.encode_to_vec()
    }
}
