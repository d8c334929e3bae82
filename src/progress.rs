//! Progress reporting without terminal code: the library says "a task of N bytes named
//! `label` begins" and counts bytes as it goes; whoever called it decides what that looks
//! like. The binary draws indicatif bars on stderr when it is a terminal
//! (`cmd::progress`); tests and library users pass [`Quiet`].

/// Counts the bytes of one task; dropping it ends the task.
pub type Counter<'a> = Box<dyn Fn(u64) + Send + Sync + 'a>;

/// Something that shows progress.
pub trait Progress: Sync {
    /// A task of `total` bytes named `label` begins.
    fn task(&self, label: &str, total: u64) -> Counter<'_>;
}

/// No progress shown.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn task(&self, _label: &str, _total: u64) -> Counter<'_> {
        Box::new(|_| {})
    }
}
