//! The deterministic simulator, run over many seeds: every office drawn from a seed (loss up
//! to 30 %, duplicates, reordering, partitions, crashes, clock skew of ±300 s, forged
//! entries) must keep its invariants every round and end with identical replicas.

use std::thread;

use officemesh::sim::{self, SimConfig};

/// How many seeds to run: `OFFICEMESH_SIM_SEEDS`, 200 by default (what CI runs).
fn seed_count() -> u64 {
    match std::env::var("OFFICEMESH_SIM_SEEDS") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("OFFICEMESH_SIM_SEEDS={text:?} is not a number of seeds")),
        Err(_) => 200,
    }
}

#[test]
fn every_seed_converges_with_its_invariants_kept() {
    let count = seed_count();
    let threads = thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let failures: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || {
                    (0..count)
                        .filter(|seed| seed % threads == worker)
                        .filter_map(|seed| sim::run(&SimConfig::from_seed(seed)).err())
                        .map(|failure| failure.to_string())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a simulator thread panicked"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_seed_replays_exactly() {
    let run = |seed| sim::run(&SimConfig::from_seed(seed)).expect("seed converges");
    let (a, b, c) = (run(7), run(7), run(8));
    let key = |r: &sim::SimReport| {
        (
            r.nodes,
            r.messages_sent,
            r.messages_lost,
            r.bytes(),
            r.writes,
            r.crashes,
        )
    };
    assert_eq!(key(&a), key(&b));
    assert_ne!(key(&a), key(&c));
}

#[test]
fn the_faults_are_really_injected() {
    // Over a handful of seeds every kind of fault happens; a simulator that quietly stopped
    // injecting them would pass everything else.
    let reports = sim::run_seeds(0, 40).expect("seeds converge");
    let total = |f: fn(&sim::SimReport) -> u64| reports.iter().map(f).sum::<u64>();
    assert!(total(|r| r.messages_lost) > 0, "no message was lost");
    assert!(
        total(|r| r.messages_duplicated) > 0,
        "no message was duplicated"
    );
    assert!(total(|r| r.crashes) > 0, "no node crashed");
    assert!(total(|r| r.partitions) > 0, "the office never split");
    assert!(total(|r| r.expired) > 0, "nothing expired");
    assert!(total(|r| r.forgeries_sent) > 0, "nothing was forged");
    assert!(
        total(|r| r.rejections) > 0,
        "forged entries were never rejected"
    );
}

#[test]
fn a_failure_names_its_seed_and_how_to_replay_it() {
    let failure = sim::SimFailure {
        seed: 42,
        replay: SimConfig::from_seed(42).replay,
        round: 3,
        message: "example".into(),
    };
    let text = failure.to_string();
    assert!(
        text.contains("seed 42 failed in round 3: example"),
        "{text}"
    );
    assert!(
        text.contains("cargo run --release -- sim --replay --seed 42"),
        "{text}"
    );
}

/// A five-node office, lossless so that only partitions keep writes from a node, split now
/// and then if `partitions`: the rounds (seconds) from each heal until every node holds what
/// either side had, and the bytes the runs sent.
fn heal_rounds(partitions: bool, gap_pulls: bool) -> (Vec<u64>, u64) {
    let mut all = Vec::new();
    let mut bytes = 0;
    for seed in 0..60 {
        let mut config = SimConfig::new(5, seed);
        config.partitions = partitions;
        config.active_rounds = 300;
        config.reading_interval_rounds = 2;
        config.sync_interval_rounds = 10;
        config.gap_pulls = gap_pulls;
        let report = sim::run(&config).expect("the seed converges");
        bytes += report.bytes();
        all.extend(report.heal_rounds);
    }
    all.sort_unstable();
    (all, bytes)
}

#[test]
fn after_a_heal_the_first_push_starts_the_repair() {
    let (with, bytes_with) = heal_rounds(true, true);
    let (without, bytes_without) = heal_rounds(true, false);
    assert!(with.len() >= 30, "too few heals to judge: {}", with.len());
    let median = |rounds: &[u64]| rounds[rounds.len() / 2];
    let longest = |rounds: &[u64]| rounds[rounds.len() - 1];
    println!(
        "heals: {}; with pulls on a gap median {} s, longest {} s, {bytes_with} bytes sent; periodic sync alone median {} s, longest {} s, {bytes_without} bytes",
        with.len(),
        median(&with),
        longest(&with),
        median(&without),
        longest(&without)
    );
    // The goal of a real office: identical within 2 s of the heal.
    assert!(
        longest(&with) <= 2,
        "a heal took {} s with pulls on a gap: {with:?}",
        longest(&with)
    );
    assert!(
        median(&without) > median(&with),
        "pulls on a gap bring nothing over the periodic sync: {without:?} vs {with:?}"
    );
    // An office that never splits never shows a gap: not one byte more.
    let (_, calm_with) = heal_rounds(false, true);
    let (_, calm_without) = heal_rounds(false, false);
    assert_eq!(
        calm_with, calm_without,
        "pulls on a gap cost an office that never split"
    );
}
