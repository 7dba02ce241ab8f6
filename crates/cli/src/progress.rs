//! Progress output for people, in BuildKit's two styles.
//!
//! - `plain`: one line per event, prefixed `#N` per step, with step output, `CACHED`, `DONE
//!   1.2s` and `ERROR` lines — stable and greppable, for CI logs.
//! - `tty`: a live view, redrawn ten times a second, of every step with its duration and the
//!   last lines of output of the steps that are running.
//!
//! Both keep the last lines of every step's output, so a failure can be shown with its log.

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::{Event, Progress};

use crate::args::ProgressMode;

/// How many lines of each step's output are kept for error reports.
const KEPT_LINES: usize = 10;
/// How many lines of a running step's output the tty view shows.
const TTY_LOG_LINES: usize = 6;

struct Step {
    number: usize,
    name: String,
    started: Option<Instant>,
    duration: Option<Duration>,
    cached: bool,
    error: Option<String>,
    lines: VecDeque<String>,
    partial: [Vec<u8>; 2],
}

struct State {
    /// Step numbers by vertex digest.
    numbers: HashMap<String, usize>,
    steps: Vec<Step>,
    start: Instant,
    drawn_lines: usize,
    done: bool,
}

/// The progress display of one command.
pub(crate) struct Display {
    tty: bool,
    state: Mutex<State>,
    wake: Condvar,
    painter: Mutex<Option<JoinHandle<()>>>,
}

impl Display {
    /// A display in `mode`. `quiet` shows nothing in plain mode except warnings (used when the
    /// command's real output goes to stdout and progress would only be noise).
    pub(crate) fn new(mode: ProgressMode, quiet: bool) -> Arc<Display> {
        let tty = match mode {
            ProgressMode::Tty => true,
            ProgressMode::Plain => false,
            ProgressMode::Auto => std::io::stderr().is_terminal() && !quiet,
        };
        let display = Arc::new(Display {
            tty,
            state: Mutex::new(State {
                numbers: HashMap::new(),
                steps: Vec::new(),
                start: Instant::now(),
                drawn_lines: 0,
                done: false,
            }),
            wake: Condvar::new(),
            painter: Mutex::new(None),
        });
        if tty {
            let painter = display.clone();
            let handle = std::thread::spawn(move || painter.paint_loop());
            *display.painter.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
        display
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prints a warning above the progress.
    pub(crate) fn warn(&self, message: &str) {
        let mut state = self.lock();
        self.clear(&mut state);
        eprintln!("WARNING: {message}");
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

    /// The step for `vertex`, created (and announced in plain mode) on first sight.
    fn step<'a>(&self, state: &'a mut State, vertex: &str, name: Option<&str>) -> &'a mut Step {
        let number = match state.numbers.get(vertex) {
            Some(n) => *n,
            None => {
                let number = state.steps.len() + 1;
                state.numbers.insert(vertex.to_string(), number);
                let name = name.unwrap_or("").to_string();
                if !self.tty {
                    eprintln!("#{number} {name}");
                }
                state.steps.push(Step {
                    number,
                    name,
                    started: None,
                    duration: None,
                    cached: false,
                    error: None,
                    lines: VecDeque::new(),
                    partial: [Vec::new(), Vec::new()],
                });
                number
            }
        };
        &mut state.steps[number - 1]
    }

    fn on_log(&self, step: &mut Step, stream: u8, data: &[u8]) {
        let index = usize::from(stream == 2);
        let since = step.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        step.partial[index].extend_from_slice(data);
        while let Some(pos) = step.partial[index].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = step.partial[index].drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if !self.tty {
                eprintln!("#{} {since:.3} {text}", step.number);
            }
            step.lines.push_back(text);
            while step.lines.len() > KEPT_LINES {
                step.lines.pop_front();
            }
        }
    }

    fn flush_partial(&self, step: &mut Step) {
        for index in 0..2 {
            if !step.partial[index].is_empty() {
                let text = String::from_utf8_lossy(&step.partial[index]).into_owned();
                step.partial[index].clear();
                if !self.tty {
                    let since = step.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
                    eprintln!("#{} {since:.3} {text}", step.number);
                }
                step.lines.push_back(text);
                while step.lines.len() > KEPT_LINES {
                    step.lines.pop_front();
                }
            }
        }
    }

    fn clear(&self, state: &mut State) {
        if self.tty && state.drawn_lines > 0 {
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
        let mut out = String::new();
        let finished = state
            .steps
            .iter()
            .filter(|s| s.cached || s.duration.is_some())
            .count();
        out.push_str(&format!(
            "[+] Building {:.1}s ({finished}/{})\n",
            state.start.elapsed().as_secs_f64(),
            state.steps.len()
        ));
        let mut lines = 1;
        for step in &state.steps {
            let time = match (step.cached, step.duration, step.started) {
                (true, _, _) => "0.0s".to_string(),
                (_, Some(d), _) => format!("{:.1}s", d.as_secs_f64()),
                (_, None, Some(s)) => format!("{:.1}s", s.elapsed().as_secs_f64()),
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
        let mut state = self.lock();
        match event {
            Event::Started { vertex, name } => {
                let step = self.step(&mut state, &vertex.to_string(), Some(&name));
                step.started = Some(Instant::now());
            }
            Event::Cached { vertex, name } => {
                let tty = self.tty;
                let step = self.step(&mut state, &vertex.to_string(), Some(&name));
                step.cached = true;
                if !tty {
                    eprintln!("#{} CACHED\n", step.number);
                }
            }
            Event::Log { vertex, stream, data } => {
                let step = self.step(&mut state, &vertex.to_string(), None);
                let mut step_owned = std::mem::replace(step, placeholder());
                self.on_log(&mut step_owned, stream, &data);
                let number = step_owned.number;
                state.steps[number - 1] = step_owned;
            }
            Event::Status { vertex, message } => {
                let tty = self.tty;
                let step = self.step(&mut state, &vertex.to_string(), None);
                if !tty {
                    eprintln!("#{} {message}", step.number);
                }
                step.lines.push_back(message);
                while step.lines.len() > KEPT_LINES {
                    step.lines.pop_front();
                }
            }
            Event::Completed {
                vertex,
                name,
                duration,
                error,
            } => {
                let key = vertex.to_string();
                let number = self.step(&mut state, &key, Some(&name)).number;
                let mut step = std::mem::replace(&mut state.steps[number - 1], placeholder());
                self.flush_partial(&mut step);
                step.duration = Some(duration);
                if !self.tty {
                    match &error {
                        None => eprintln!("#{} DONE {:.1}s\n", step.number, duration.as_secs_f64()),
                        Some(e) => eprintln!("#{} ERROR: {e}\n", step.number),
                    }
                }
                step.error = error;
                state.steps[number - 1] = step;
            }
        }
    }
}

fn placeholder() -> Step {
    Step {
        number: 0,
        name: String::new(),
        started: None,
        duration: None,
        cached: false,
        error: None,
        lines: VecDeque::new(),
        partial: [Vec::new(), Vec::new()],
    }
}
