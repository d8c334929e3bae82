//! The forward pass's parallel loops, run by a team of helper threads that spin between
//! loops instead of sleeping.
//!
//! A decoded token starts five parallel loops per layer (Q/K/V, attention, output,
//! gate/up, down), each a few hundred microseconds long. Through rayon, the second thread
//! often falls asleep between two loops and is woken through the OS scheduler (a futex
//! and, in a VM, an inter-processor interrupt): tens of microseconds in which one core
//! works alone, then a late start that leaves the two unevenly loaded. llama.cpp's thread
//! pool spins between operations for that reason. This team does the same: its helpers
//! wait for the next loop by polling one atomic word for a couple of milliseconds, and
//! only then sleep on a condition variable (so an idle process burns no CPU).
//!
//! Which thread computes which task never changes a result: every task writes its own
//! outputs, in its own fixed order. The team takes `rayon::current_num_threads()`
//! workers, the calling thread being one of them, so `--threads` and a test's own pool
//! size it. When the team is busy (another thread's loop, or a loop inside a task), the
//! loop runs on rayon instead. Nothing is allocated per loop.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};

use rayon::prelude::*;

/// How long an idle helper polls for the next loop before it sleeps.
const SPIN: Duration = Duration::from_millis(2);

/// Run `work(0)`, …, `work(tasks - 1)`, each exactly once, on the calling thread and the
/// team's helpers; returns when all have finished.
pub fn for_each(tasks: usize, work: &(dyn Fn(usize) + Sync)) {
    let workers = rayon::current_num_threads().clamp(1, MAX_HELPERS + 1);
    if tasks <= 1 || workers == 1 {
        (0..tasks).for_each(work);
        return;
    }
    let team = team();
    match team.submit.try_lock() {
        Ok(mut helpers) => {
            while *helpers < workers - 1 {
                if spawn_helper(team, *helpers).is_err() {
                    break;
                }
                *helpers += 1;
            }
            let limit = (workers - 1).min(*helpers).min(tasks - 1);
            team.run(tasks, limit, work);
        }
        Err(TryLockError::WouldBlock) | Err(TryLockError::Poisoned(_)) => {
            (0..tasks).into_par_iter().for_each(work)
        }
    }
}

/// Helpers a team may have (the state word counts them in 8 bits).
const MAX_HELPERS: usize = 127;

// The state word: the loop's epoch in bits 32..64, the number of helpers allowed to join
// it in 16..24, `CLOSED` (no helper may join any more), and the helpers inside in 0..8.
const CLOSED: u64 = 1 << 15;
const INSIDE: u64 = 0xFF;

fn epoch_of(state: u64) -> u64 {
    state >> 32
}

fn limit_of(state: u64) -> u64 {
    (state >> 16) & 0xFF
}

/// The loop being run: the closure lives on the submitting thread's stack, which waits
/// for every helper that joined to leave before it returns.
#[derive(Clone, Copy)]
struct Job {
    work: *const (dyn Fn(usize) + Sync),
    tasks: usize,
}

struct Team {
    /// Held while a loop is submitted and run; counts the helpers spawned.
    submit: Mutex<usize>,
    state: AtomicU64,
    /// The next task index to hand out.
    next: AtomicUsize,
    /// Written only while `state` is closed with nobody inside, read only by helpers
    /// that joined the open loop (the `Release` store that opens it publishes it).
    job: UnsafeCell<Job>,
    sleep: Mutex<()>,
    wake: Condvar,
    sleepers: AtomicUsize,
}

// SAFETY: `job` is accessed under the protocol described on the field; the raw pointer
// it holds points to a `Sync` closure.
unsafe impl Sync for Team {}
// SAFETY: as above.
unsafe impl Send for Team {}

fn noop(_: usize) {}

fn team() -> &'static Team {
    static TEAM: OnceLock<Team> = OnceLock::new();
    TEAM.get_or_init(|| Team {
        submit: Mutex::new(0),
        state: AtomicU64::new(CLOSED),
        next: AtomicUsize::new(0),
        job: UnsafeCell::new(Job {
            work: &noop as &(dyn Fn(usize) + Sync),
            tasks: 0,
        }),
        sleep: Mutex::new(()),
        wake: Condvar::new(),
        sleepers: AtomicUsize::new(0),
    })
}

fn spawn_helper(team: &'static Team, index: usize) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("gguf-gate-team-{index}"))
        .spawn(move || team.help())
        .map(|_| ())
}

/// Closes the loop and waits for the helpers inside, also when a task of the
/// submitting thread panics (the closure must outlive every helper's use of it).
struct CloseOnDrop<'a>(&'a Team);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        let state = &self.0.state;
        state.fetch_or(CLOSED, Ordering::AcqRel);
        let mut polls = 0u32;
        while state.load(Ordering::Acquire) & INSIDE != 0 {
            // A helper descheduled mid-task (more threads than cores) gets the core.
            polls += 1;
            if polls.is_multiple_of(4096) {
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
    }
}

impl Team {
    /// Run one loop with up to `limit` helpers (the caller holds `submit`).
    fn run(&self, tasks: usize, limit: usize, work: &(dyn Fn(usize) + Sync)) {
        let previous = self.state.load(Ordering::Acquire);
        // SAFETY: the state is closed with nobody inside (every loop ends so, and the
        // `submit` lock keeps other submitters out): no helper reads `job` now. The
        // lifetime is erased; `CloseOnDrop` keeps the closure alive past its last use.
        unsafe {
            *self.job.get() = Job {
                work: std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(
                    work,
                ),
                tasks,
            };
        }
        self.next.store(0, Ordering::Relaxed);
        let epoch = epoch_of(previous).wrapping_add(1) & 0xFFFF_FFFF;
        let guard = CloseOnDrop(self);
        self.state
            .store((epoch << 32) | ((limit as u64) << 16), Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _lock = self.sleep.lock();
            self.wake.notify_all();
        }
        self.take_tasks(tasks, work);
        drop(guard);
    }

    fn take_tasks(&self, tasks: usize, work: &(dyn Fn(usize) + Sync)) {
        loop {
            let t = self.next.fetch_add(1, Ordering::Relaxed);
            if t >= tasks {
                return;
            }
            work(t);
        }
    }

    /// A helper's life: join every open loop it may, sleep when none came for [`SPIN`].
    fn help(&self) {
        let mut seen = epoch_of(self.state.load(Ordering::Acquire));
        loop {
            let mut idle_since = None;
            let mut polls = 0u32;
            loop {
                let state = self.state.load(Ordering::Acquire);
                if epoch_of(state) != seen {
                    if self.join(state) {
                        // SAFETY: joined an open loop: `job` was published by the
                        // `Release` store that opened it and stays valid until this
                        // helper leaves (`CloseOnDrop` waits for it).
                        let job = unsafe { *self.job.get() };
                        // SAFETY: as above.
                        let work = unsafe { &*job.work };
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            self.take_tasks(job.tasks, work)
                        }));
                        if ran.is_err() {
                            // The submitter would wait for this helper forever, or return
                            // with rows never computed: neither is acceptable.
                            eprintln!("gguf-gate: a forward-pass task panicked; aborting");
                            std::process::abort();
                        }
                        self.state.fetch_sub(1, Ordering::Release);
                    }
                    seen = epoch_of(state);
                    break;
                }
                polls += 1;
                if polls.is_multiple_of(1024) {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > SPIN {
                        self.sleep_until_changed(seen);
                        idle_since = None;
                    }
                }
                std::hint::spin_loop();
            }
        }
    }

    /// Enter the loop `state` announces if it is still open and has room.
    fn join(&self, mut state: u64) -> bool {
        loop {
            if state & CLOSED != 0 || state & INSIDE >= limit_of(state) {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) if epoch_of(now) == epoch_of(state) => state = now,
                Err(_) => return false,
            }
        }
    }

    fn sleep_until_changed(&self, seen: u64) {
        let Ok(mut lock) = self.sleep.lock() else {
            return;
        };
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while epoch_of(self.state.load(Ordering::SeqCst)) == seen {
            lock = match self.wake.wait(lock) {
                Ok(lock) => lock,
                Err(_) => break,
            };
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A mutable slice cut into disjoint chunks that the tasks of one loop fill, each its
/// own (`for_each` hands out every task index once).
pub struct Chunks<'a, T> {
    ptr: *mut T,
    len: usize,
    _slice: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: the chunks handed out are disjoint (see `Chunks::get`), so sharing the view
// between threads is sharing disjoint `&mut` slices.
unsafe impl<T: Send> Sync for Chunks<'_, T> {}

impl<'a, T> Chunks<'a, T> {
    pub fn new(slice: &'a mut [T]) -> Self {
        Chunks {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _slice: std::marker::PhantomData,
        }
    }

    /// Elements `range` (clamped to the slice).
    ///
    /// # Safety
    /// No two live results may overlap: each task asks for its own range, once.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self, range: std::ops::Range<usize>) -> &mut [T] {
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        // SAFETY: in bounds by the clamping; exclusive by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_whatever_the_pool() {
        for threads in [1, 2, 3, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for tasks in [0, 1, 2, 7, 64, 1000] {
                    let counts: Vec<AtomicUsize> =
                        (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                    for_each(tasks, &|t| {
                        counts[t].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
                }
            });
        }
    }

    #[test]
    fn a_loop_inside_a_task_and_loops_from_two_threads_still_run_every_task() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    pool.install(|| {
                        for _ in 0..200 {
                            for_each(4, &|_| {
                                for_each(3, &|_| {
                                    total.fetch_add(1, Ordering::Relaxed);
                                });
                            });
                        }
                    })
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 2 * 200 * 4 * 3);
    }

    #[test]
    fn helpers_that_slept_wake_for_the_next_loop() {
        // Each round waits until the helpers have gone to sleep, then runs tasks long
        // enough that a woken helper takes some. The first round may only spawn them,
        // and a round may fall back to rayon while another test holds the team, so
        // of ten rounds at least two must have had a team helper working.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let rounds_with_a_helper = pool.install(|| {
            (0..10)
                .filter(|_| {
                    std::thread::sleep(SPIN * 3);
                    let ran = AtomicUsize::new(0);
                    let by_helper = AtomicUsize::new(0);
                    for_each(16, &|_| {
                        std::thread::sleep(Duration::from_millis(1));
                        ran.fetch_add(1, Ordering::Relaxed);
                        let name = std::thread::current().name().map(str::to_owned);
                        if name.is_some_and(|n| n.starts_with("gguf-gate-team-")) {
                            by_helper.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    assert_eq!(ran.load(Ordering::Relaxed), 16);
                    by_helper.load(Ordering::Relaxed) > 0
                })
                .count()
        });
        assert!(rounds_with_a_helper >= 2, "{rounds_with_a_helper} rounds");
    }

    #[test]
    fn chunks_are_written_by_their_own_tasks() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut out = vec![0usize; 103];
        let view = Chunks::new(&mut out);
        pool.install(|| {
            for_each(11, &|t| {
                // SAFETY: task t owns elements 10t..10t+10.
                for v in unsafe { view.get(10 * t..10 * t + 10) } {
                    *v = t + 1;
                }
            })
        });
        let want: Vec<usize> = (0..103).map(|i| (i / 10).min(10) + 1).collect();
        assert_eq!(out, want);
    }
}
