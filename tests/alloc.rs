//! A decoded token allocates nothing (issue #15: "no allocation per token"): after a
//! session's first passes have sized its scratch, decoding one more token — alone, or
//! one for each of three prompts decoded together as the probe does — makes no call to
//! the allocator, on SmolLM2 in a two-thread pool. Counted by a global allocator that
//! wraps the system's, so this file holds this one test only (tests run in parallel
//! within a binary and would count each other's allocations).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use gguf_gate::gguf::GgufFile;
use gguf_gate::infer::{argmax, Logits, Model, Step};

struct Counting;

static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn decoding_a_token_allocates_nothing() {
    let Some(path) = common::smollm2() else {
        return;
    };
    let file = GgufFile::open(&path).expect("open SmolLM2");
    let model = Model::load(&file).expect("load SmolLM2");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("pool");
    pool.install(|| {
        let mut s = model.new_session_lanes(32, 8, 3);
        let prompt = [1u32, 504, 3575, 282, 4649, 314];
        let steps: Vec<Step> = (0..3)
            .flat_map(|lane| {
                prompt[lane..]
                    .iter()
                    .enumerate()
                    .map(move |(pos, &token)| Step { lane, pos, token })
            })
            .collect();
        model
            .forward_steps(&mut s, &steps, Logits::Last)
            .expect("prompts");
        let vocab = model.config().vocab;
        let mut decode = Vec::with_capacity(3);
        let mut one_round = |s: &mut gguf_gate::infer::Session| {
            decode.clear();
            for lane in 0..3 {
                let row = s.logit_rows().get(lane * vocab..(lane + 1) * vocab);
                decode.push(Step {
                    lane,
                    pos: s.lane_len(lane),
                    token: argmax(row.unwrap_or(&[])),
                });
            }
            model
                .forward_steps(s, &decode, Logits::Last)
                .expect("decode");
        };
        // Warm-up: the scratch grows to its size for this batch shape.
        one_round(&mut s);
        let before = CALLS.load(Ordering::SeqCst);
        for _ in 0..4 {
            one_round(&mut s);
        }
        let three = CALLS.load(Ordering::SeqCst) - before;
        // One lane alone (the `run` command's decoding).
        let mut single = model.new_session(16);
        model
            .forward_batch(&mut single, &prompt, 0, Logits::Last)
            .expect("prompt");
        let mut token = argmax(single.logits());
        let step = |single: &mut gguf_gate::infer::Session, token: u32| {
            let pos = single.len();
            model
                .forward_batch(single, &[token], pos, Logits::Last)
                .expect("decode");
            argmax(single.logits())
        };
        token = step(&mut single, token);
        let before = CALLS.load(Ordering::SeqCst);
        for _ in 0..4 {
            token = step(&mut single, token);
        }
        let alone = CALLS.load(Ordering::SeqCst) - before;
        assert_eq!(
            (three, alone),
            (0, 0),
            "allocations in 4 decoding steps: three lanes, one lane"
        );
    });
}
