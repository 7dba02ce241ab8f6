//! Progress output: for people in BuildKit's two styles, and for programs as JSON lines.
//!
//! - `plain`: one line per event, prefixed `#N` per step, with step output, `CACHED`, `DONE
//!   1.2s` and `ERROR` lines — stable and greppable, for CI logs. `kiln logs` replays a stored
//!   build through it.
//! - `tty`: a live view, redrawn ten times a second, of every step with its duration and the
//!   last lines of output of the steps that are running.
//! - `json`: every event as one JSON object per line (`engine::progress::json`), kiln's own
//!   form, with cache-miss explanations.
//! - `rawjson`: buildx's form, BuildKit's `SolveStatus` objects ([`crate::rawjson`]).
//!
//! With `--explain-cache`, the human styles show why each step that ran missed the cache.
//! All styles keep the last lines of every step's output, so a failure can be shown with its
//! log.

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use engine::{Event, Progress};

use crate::rawjson;

/// How many lines of each step's output are kept for error reports.
const KEPT_LINES: usize = 10;
/// How many lines of a running step's output the tty view shows.
const TTY_LOG_LINES: usize = 6;
/// Most bytes of one step's output shown, in every style (BuildKit's per-step log limit); the
/// rest is dropped from the display with one [`CLIPPED`] note, so a step that prints a
/// hundred megabytes neither floods the terminal nor slows the build. The build log keeps
/// up to 64 MiB (`kiln logs --progress rawjson`); `kiln logs` in plain style shows it clipped
/// here again, as it was shown.
const SHOWN_LIMIT: usize = 2 << 20;
/// The note that replaces a step's output beyond [`SHOWN_LIMIT`], BuildKit's words.
const CLIPPED: &str = "[output clipped, log limit 2MiB reached]";

/// How events are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// A live view, redrawn.
    Tty,
    /// One line per event.
    Plain,
    /// kiln's JSON lines.
    Json,
    /// buildx's `SolveStatus` JSON lines.
    RawJson,
    /// Nothing while the build runs (`--quiet`); a failure is still shown with its logs.
    Quiet,
}

impl Style {
    /// `tty` when standard error is a terminal, else `plain` (buildx's `auto`).
    pub(crate) fn auto() -> Style {
        if std::io::stderr().is_terminal() {
            Style::Tty
        } else {
            Style::Plain
        }
    }
}

struct Step {
    number: usize,
    name: String,
    /// When it started, since the display started.
    started: Option<Duration>,
    duration: Option<Duration>,
    cached: bool,
    error: Option<String>,
    /// Why it missed the cache (shown with `--explain-cache`).
    reasons: Vec<String>,
    lines: VecDeque<String>,
    partial: [Vec<u8>; 2],
    /// Bytes of output shown so far (at most [`SHOWN_LIMIT`]).
    shown: usize,
}

impl Step {
    fn new(number: usize, name: String) -> Step {
        Step {
            number,
            name,
            started: None,
            duration: None,
            cached: false,
            error: None,
            reasons: Vec::new(),
            lines: VecDeque::new(),
            partial: [Vec::new(), Vec::new()],
            shown: 0,
        }
    }

    /// How much of a chunk of output may still be shown, and whether the chunk reaches the
    /// limit (so the clipped note is due now; later chunks get `(0, false)`).
    fn budget(&mut self, len: usize) -> (usize, bool) {
        let room = SHOWN_LIMIT - self.shown;
        let take = len.min(room);
        self.shown += take;
        (take, room > 0 && len >= room)
    }

    fn keep(&mut self, line: String) {
        self.lines.push_back(line);
        while self.lines.len() > KEPT_LINES {
            self.lines.pop_front();
        }
    }
}

struct State {
    /// Step numbers by vertex digest.
    numbers: HashMap<String, usize>,
    steps: Vec<Step>,
    start: Instant,
    /// The wall-clock time at `start`, for `rawjson` timestamps.
    wall_start: SystemTime,
    drawn_lines: usize,
    done: bool,
    /// The `rawjson` encoder's memory of each vertex.
    rawjson: rawjson::Encoder,
}

impl State {
    fn new(done: bool) -> State {
        State {
            numbers: HashMap::new(),
            steps: Vec::new(),
            start: Instant::now(),
            wall_start: SystemTime::now(),
            drawn_lines: 0,
            done,
            rawjson: rawjson::Encoder::default(),
        }
    }
}

/// The progress display of one command.
pub(crate) struct Display {
    style: Style,
    explain: bool,
    state: Mutex<State>,
    wake: Condvar,
    painter: Mutex<Option<JoinHandle<()>>>,
}

impl Display {
    /// A display in `style`. With `explain`, the human styles show why steps missed the cache.
    pub(crate) fn new(style: Style, explain: bool) -> Arc<Display> {
        let display = Arc::new(Display {
            style,
            explain,
            state: Mutex::new(State::new(false)),
            wake: Condvar::new(),
            painter: Mutex::new(None),
        });
        if style == Style::Tty {
            let painter = display.clone();
            let handle = std::thread::spawn(move || painter.paint_loop());
            *display.painter.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
        display
    }

    /// A plain display that shows cache-miss explanations (`kiln logs`).
    pub(crate) fn replay() -> Display {
        Display {
            style: Style::Plain,
            explain: true,
            state: Mutex::new(State::new(true)),
            wake: Condvar::new(),
            painter: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prints a warning above the progress (in `rawjson`, as a `SolveStatus` warning).
    pub(crate) fn warn(&self, message: &str) {
        let mut state = self.lock();
        // After the build, the last view stays on screen.
        if !state.done {
            self.clear(&mut state);
        }
        match self.style {
            Style::RawJson => eprintln!("{}", rawjson::warning(message)),
            _ => eprintln!("WARNING: {message}"),
        }
    }

    /// Stops the live view (drawing it one last time).
    pub(crate) fn finish(&self) {
        {
            let mut state = self.lock();
            state.done = true;
        }
        self.wake.notify_all();
        if let Some(handle) = self.painter.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }

    /// The last lines of output of the step for `vertex`, and its name.
    pub(crate) fn tail(&self, vertex: &str) -> Option<(String, Vec<String>)> {
        let state = self.lock();
        let number = *state.numbers.get(vertex)?;
        let step = &state.steps[number - 1];
        let mut lines: Vec<String> = step.lines.iter().cloned().collect();
        for partial in &step.partial {
            if !partial.is_empty() {
                lines.push(String::from_utf8_lossy(partial).into_owned());
            }
        }
        let keep = lines.len().saturating_sub(KEPT_LINES);
        Some((step.name.clone(), lines.split_off(keep)))
    }

    /// The step number of `vertex`, created (and announced in plain style) on first sight.
    fn number(&self, state: &mut State, vertex: &str, name: Option<&str>) -> usize {
        if let Some(n) = state.numbers.get(vertex) {
            return *n;
        }
        let number = state.steps.len() + 1;
        state.numbers.insert(vertex.to_string(), number);
        let name = name.unwrap_or("").to_string();
        if self.style == Style::Plain {
            eprintln!("#{number} {name}");
        }
        state.steps.push(Step::new(number, name));
        number
    }

    fn on_log(&self, step: &mut Step, stream: u8, data: &[u8], at: Duration) {
        let index = usize::from(stream == 2);
        let since = at.saturating_sub(step.started.unwrap_or(at)).as_secs_f64();
        // Only the new bytes can hold a newline: the held ones were searched before (searching
        // them again would be quadratic in the length of a line that does not end).
        let mut search = step.partial[index].len();
        step.partial[index].extend_from_slice(data);
        while let Some(pos) = step.partial[index][search..].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = step.partial[index].drain(..=search + pos).collect();
            search = 0;
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if self.style == Style::Plain {
                eprintln!("#{} {since:.3} {text}", step.number);
            }
            step.keep(text);
        }
    }

    fn flush_partial(&self, step: &mut Step, at: Duration) {
        for index in 0..2 {
            if !step.partial[index].is_empty() {
                let text = String::from_utf8_lossy(&step.partial[index]).into_owned();
                step.partial[index].clear();
                if self.style == Style::Plain {
                    let since = at.saturating_sub(step.started.unwrap_or(at)).as_secs_f64();
                    eprintln!("#{} {since:.3} {text}", step.number);
                }
                step.keep(text);
            }
        }
    }

    fn clear(&self, state: &mut State) {
        if self.style == Style::Tty && state.drawn_lines > 0 {
            eprint!("\x1b[{}F\x1b[J", state.drawn_lines);
            state.drawn_lines = 0;
        }
    }

    fn paint_loop(&self) {
        let mut state = self.lock();
        loop {
            self.paint(&mut state);
            if state.done {
                return;
            }
            state = self
                .wake
                .wait_timeout(state, Duration::from_millis(100))
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn paint(&self, state: &mut State) {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(100)
            .max(40);
        let now = state.start.elapsed();
        let explain = self.explain;
        let mut out = String::new();
        let finished = state
            .steps
            .iter()
            .filter(|s| s.cached || s.duration.is_some())
            .count();
        out.push_str(&format!(
            "[+] Building {:.1}s ({finished}/{})\n",
            now.as_secs_f64(),
            state.steps.len()
        ));
        let mut lines = 1;
        for step in &state.steps {
            let time = match (step.cached, step.duration, step.started) {
                (true, _, _) => "0.0s".to_string(),
                (_, Some(d), _) => format!("{:.1}s", d.as_secs_f64()),
                (_, None, Some(s)) => format!("{:.1}s", now.saturating_sub(s).as_secs_f64()),
                _ => String::new(),
            };
            let prefix = if step.cached {
                " => CACHED "
            } else if step.error.is_some() {
                " => ERROR "
            } else {
                " => "
            };
            let label = format!("{prefix}{}", step.name);
            out.push_str(&fit(&label, &time, width));
            out.push('\n');
            lines += 1;
            if explain {
                for reason in &step.reasons {
                    let text: String = format!(" => => cache miss: {reason}")
                        .chars()
                        .take(width)
                        .collect();
                    out.push_str(&text);
                    out.push('\n');
                    lines += 1;
                }
            }
            let running = step.started.is_some() && step.duration.is_none() && !step.cached;
            if running || step.error.is_some() {
                let skip = step.lines.len().saturating_sub(TTY_LOG_LINES);
                for line in step.lines.iter().skip(skip) {
                    let text: String = format!(" => => # {line}").chars().take(width).collect();
                    out.push_str(&text);
                    out.push('\n');
                    lines += 1;
                }
            }
        }
        self.clear(state);
        eprint!("{out}");
        let _ = std::io::stderr().flush();
        state.drawn_lines = lines;
    }

    /// Shows `event`, which happened `at` after the build started.
    pub(crate) fn event_at(&self, event: Event, at: Duration) {
        let mut state = self.lock();
        // Output is printed by `on_log_event`, as far as it is shown.
        if !matches!(event, Event::Log { .. }) {
            self.print_json(&mut state, &event, at);
        }
        let plain = self.style == Style::Plain;
        match event {
            Event::Started { vertex, name, .. } => {
                let n = self.number(&mut state, &vertex.to_string(), Some(&name));
                state.steps[n - 1].started = Some(at);
            }
            Event::Cached { vertex, name, .. } => {
                let n = self.number(&mut state, &vertex.to_string(), Some(&name));
                state.steps[n - 1].cached = true;
                if plain {
                    eprintln!("#{n} CACHED\n");
                }
            }
            // Explanations arrive before the step starts; a display that does not show them
            // must not announce the step early either.
            Event::CacheMiss { .. } if !self.explain => {}
            Event::CacheMiss {
                vertex,
                name,
                reasons,
            } => {
                let n = self.number(&mut state, &vertex.to_string(), Some(&name));
                let texts: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                if plain {
                    for text in &texts {
                        eprintln!("#{n} cache miss: {text}");
                    }
                }
                state.steps[n - 1].reasons = texts;
            }
            Event::Log { vertex, stream, data } => self.on_log_event(&mut state, vertex, stream, data, at),
            Event::Status { vertex, message } => {
                let n = self.number(&mut state, &vertex.to_string(), None);
                if plain {
                    eprintln!("#{n} {message}");
                }
                state.steps[n - 1].keep(message);
            }
            Event::Completed {
                vertex,
                name,
                duration,
                error,
            } => {
                let n = self.number(&mut state, &vertex.to_string(), Some(&name));
                let step = &mut state.steps[n - 1];
                self.flush_partial(step, at);
                step.duration = Some(duration);
                if plain {
                    match &error {
                        None => eprintln!("#{n} DONE {:.1}s\n", duration.as_secs_f64()),
                        Some(e) => eprintln!("#{n} ERROR: {e}\n"),
                    }
                }
                step.error = error;
            }
        }
    }

    /// Prints `event` in the JSON styles.
    fn print_json(&self, state: &mut State, event: &Event, at: Duration) {
        match self.style {
            Style::Json => eprintln!("{}", engine::progress::json::encode_event(at, event)),
            Style::RawJson => {
                let when = state.wall_start + at;
                if let Some(line) = state.rawjson.event(event, when) {
                    eprintln!("{line}");
                }
            }
            Style::Tty | Style::Plain | Style::Quiet => {}
        }
    }

    /// Output of a step, shown up to [`SHOWN_LIMIT`] bytes, then the [`CLIPPED`] note.
    fn on_log_event(
        &self,
        state: &mut State,
        vertex: oci::Digest,
        stream: u8,
        mut data: Vec<u8>,
        at: Duration,
    ) {
        let n = self.number(state, &vertex.to_string(), None);
        let (shown, clipped_now) = state.steps[n - 1].budget(data.len());
        data.truncate(shown);
        if matches!(self.style, Style::Json | Style::RawJson) {
            let mut events = Vec::new();
            if !data.is_empty() {
                events.push(Event::Log {
                    vertex: vertex.clone(),
                    stream,
                    data: data.clone(),
                });
            }
            if clipped_now {
                events.push(match self.style {
                    // BuildKit writes the note into the step's output.
                    Style::RawJson => Event::Log {
                        vertex,
                        stream,
                        data: format!("{CLIPPED}\n").into_bytes(),
                    },
                    _ => Event::Status {
                        vertex,
                        message: CLIPPED.to_string(),
                    },
                });
            }
            for event in &events {
                self.print_json(state, event, at);
            }
        }
        let step = &mut state.steps[n - 1];
        self.on_log(step, stream, &data, at);
        if clipped_now {
            self.flush_partial(step, at);
            if self.style == Style::Plain {
                eprintln!("#{n} {CLIPPED}");
            }
            step.keep(CLIPPED.to_string());
        }
    }
}

/// `label ... time`, padded or cut to `width` columns.
fn fit(label: &str, time: &str, width: usize) -> String {
    let room = width.saturating_sub(time.len() + 1);
    let mut text: String = label.chars().take(room).collect();
    let len = text.chars().count();
    text.push_str(&" ".repeat(room - len + 1));
    text.push_str(time);
    text
}

impl Progress for Display {
    fn event(&self, event: Event) {
        let at = self.lock().start.elapsed();
        self.event_at(event, at);
    }
}
