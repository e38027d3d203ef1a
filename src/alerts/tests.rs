//! The rule machine as a table: readings in (seconds, value), transitions out.

use super::*;
use crate::state::Hlc;

const S: u64 = 1000;

fn above(limit: f64, hysteresis: f64, for_s: u64, repeat_s: u64) -> Trigger {
    Trigger {
        threshold: Threshold::Above(limit),
        hysteresis,
        hold_ms: for_s * S,
        repeat_ms: (repeat_s > 0).then_some(repeat_s * S),
    }
}

fn below(limit: f64, hysteresis: f64, for_s: u64, repeat_s: u64) -> Trigger {
    Trigger {
        threshold: Threshold::Below(limit),
        ..above(limit, hysteresis, for_s, repeat_s)
    }
}

use Transition::{Clear, Raise, Repeat};

/// Feeds `steps` (second, value) to a fresh machine and compares the transitions it answers.
fn check(case: &str, trigger: Trigger, steps: &[(u64, f64)], expected: &[(u64, Transition)]) {
    let mut machine = Machine::default();
    let actual: Vec<(u64, Transition)> = steps
        .iter()
        .filter_map(|&(second, value)| {
            machine
                .step(&trigger, value, second * S)
                .map(|transition| (second, transition))
        })
        .collect();
    assert_eq!(actual, expected, "{case}");
}

/// A case of the table: what it shows, the rule, the readings, the transitions expected.
type Case = (
    &'static str,
    Trigger,
    &'static [(u64, f64)],
    &'static [(u64, Transition)],
);

#[test]
fn the_rule_machine() {
    let cases: &[Case] = &[
        (
            "raises once the condition has held for for_s, and only once",
            above(24.0, 0.5, 300, 0),
            &[
                (0, 25.0),
                (100, 25.0),
                (299, 25.0),
                (300, 25.0),
                (400, 26.0),
                (9000, 25.0),
            ],
            &[(300, Raise)],
        ),
        (
            "a reading back under the threshold restarts for_s",
            above(24.0, 0.5, 300, 0),
            &[
                (0, 25.0),
                (200, 23.9),
                (250, 25.0),
                (500, 25.0),
                (550, 25.0),
            ],
            &[(550, Raise)],
        ),
        (
            "for_s 0 raises at once; the threshold itself counts",
            above(24.0, 0.5, 0, 0),
            &[(0, 24.0)],
            &[(0, Raise)],
        ),
        (
            "under the threshold nothing happens",
            above(24.0, 0.5, 0, 0),
            &[(0, 23.9), (1000, 0.0), (2000, 23.99)],
            &[],
        ),
        (
            "an interrupted wait clears nothing (nothing was raised)",
            above(24.0, 0.5, 60, 0),
            &[(0, 25.0), (10, 20.0), (100, 20.0)],
            &[],
        ),
        (
            "hysteresis: clears only below above - hysteresis, then raises again",
            above(24.0, 0.5, 0, 0),
            &[(0, 25.0), (10, 23.9), (20, 23.5), (30, 23.4), (40, 24.0)],
            &[(0, Raise), (30, Clear), (40, Raise)],
        ),
        (
            "a value flapping around the threshold is announced once",
            above(24.0, 0.5, 0, 0),
            &[
                (0, 24.1),
                (1, 23.9),
                (2, 24.1),
                (3, 23.8),
                (4, 24.2),
                (5, 23.6),
            ],
            &[(0, Raise)],
        ),
        (
            "without hysteresis, just under the threshold clears",
            above(24.0, 0.0, 0, 0),
            &[(0, 24.0), (1, 23.99)],
            &[(0, Raise), (1, Clear)],
        ),
        (
            "repeat_s announces again while raised",
            above(24.0, 0.5, 0, 600),
            &[
                (0, 25.0),
                (599, 25.0),
                (600, 25.0),
                (1199, 25.0),
                (1200, 25.0),
            ],
            &[(0, Raise), (600, Repeat), (1200, Repeat)],
        ),
        (
            "the repeat period starts again after a clear",
            above(24.0, 0.0, 0, 600),
            &[
                (0, 25.0),
                (300, 23.0),
                (400, 25.0),
                (900, 25.0),
                (1000, 25.0),
            ],
            &[(0, Raise), (300, Clear), (400, Raise), (1000, Repeat)],
        ),
        (
            "for_s and repeat_s together",
            above(24.0, 1.0, 300, 3600),
            &[
                (0, 25.0),
                (300, 25.0),
                (3899, 24.5),
                (3900, 24.5),
                (4000, 22.9),
            ],
            &[(300, Raise), (3900, Repeat), (4000, Clear)],
        ),
        (
            "a below rule, mirrored",
            below(18.0, 1.0, 60, 0),
            &[
                (0, 17.0),
                (59, 18.0),
                (60, 17.5),
                (70, 18.5),
                (80, 19.0),
                (90, 19.1),
            ],
            &[(60, Raise), (90, Clear)],
        ),
        (
            "a clock stepping back delays the raise, never hastens it",
            above(24.0, 0.5, 60, 0),
            &[(1000, 25.0), (500, 25.0), (1059, 25.0), (1060, 25.0)],
            &[(1060, Raise)],
        ),
    ];
    for (case, trigger, steps, expected) in cases {
        check(case, *trigger, steps, expected);
    }
}

fn default_rule() -> Rule {
    let mut rules = vec![Rule {
        quantity: Quantity::Temperature,
        room: None,
        trigger: above(24.0, 0.5, 300, 0),
        message: Template::parse(
            "the {room} temperature is at {value}. You might want to turn the AC on.",
        )
        .unwrap(),
        id: String::new(),
    }];
    assign_ids(&mut rules);
    rules.pop().unwrap()
}

fn sensor(name: &str) -> SensorId {
    SensorId::new(name).unwrap()
}

fn room(name: &str) -> Room {
    Room::new(name).unwrap()
}

#[test]
fn the_default_message_reads_as_the_issue_says() {
    let rule = default_rule();
    let message = rule.message.render(&Fill {
        room: &room("open space"),
        sensor: &sensor("desk"),
        quantity: Quantity::Temperature,
        value: 24.04,
        threshold: 24.0,
    });
    assert_eq!(
        message.as_str(),
        "the open space temperature is at 24.0°C. You might want to turn the AC on."
    );
    assert_eq!(rule.id, "temperature-above-24");
    assert_eq!(
        rule.alert_name(&sensor("desk")).as_str(),
        "temperature-above-24/desk"
    );
}

#[test]
fn templates() {
    let fill = Fill {
        room: &room("lab"),
        sensor: &sensor("co2-1"),
        quantity: Quantity::Co2,
        value: 1234.56,
        threshold: 1000.0,
    };
    let cases: &[(&str, Result<&str, &str>)] = &[
        (
            "{quantity} in {room} ({sensor}): {value} over {threshold}",
            Ok("co2 in lab (co2-1): 1234.6ppm over 1000.0ppm"),
        ),
        ("{{literal}} {room}", Ok("{literal} lab")),
        ("{rooom} is hot", Err("unknown placeholder {rooom}")),
        ("{room", Err("`{room` is not closed")),
        ("a } alone", Err("lone `}`")),
        ("   ", Err("empty")),
        ("tab\there", Err("control characters")),
    ];
    for (template, expected) in cases {
        let actual = Template::parse(template).map(|template| template.render(&fill).to_string());
        match (actual, expected) {
            (Ok(message), Ok(expected)) => assert_eq!(message, *expected, "{template:?}"),
            (Err(error), Err(expected)) => {
                assert!(error.contains(expected), "{template:?}: {error:?}");
            }
            (actual, expected) => panic!("{template:?}: {actual:?}, expected {expected:?}"),
        }
    }
    assert!(Template::parse(&"x".repeat(MAX_TEMPLATE_LEN + 1)).is_err());
}

#[test]
fn long_sensor_names_still_make_distinct_valid_alert_names() {
    let rule = default_rule();
    let long_a = sensor(&format!("{}a", "s".repeat(63)));
    let long_b = sensor(&format!("{}b", "s".repeat(63)));
    let a = rule.alert_name(&long_a);
    let b = rule.alert_name(&long_b);
    assert!(a.as_str().len() <= MAX_NAME_LEN && b.as_str().len() <= MAX_NAME_LEN);
    assert_ne!(a, b);
    assert!(a.as_str().starts_with("temperature-above-24/"));
}

#[test]
fn rules_of_the_same_shape_get_numbered_ids() {
    let mut rules = vec![default_rule(), default_rule(), default_rule()];
    rules[1].trigger.threshold = Threshold::Below(16.5);
    assign_ids(&mut rules);
    let ids: Vec<&str> = rules.iter().map(|rule| rule.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "temperature-above-24",
            "temperature-below-16.5",
            "temperature-above-24-2"
        ]
    );
}

/// One input to an evaluator: a reading (second, sensor, room, quantity, value) or a tick.
enum Input {
    Reading(u64, &'static str, &'static str, Quantity, f64),
    Tick(u64),
}

fn run(evaluator: &mut Evaluator, inputs: &[Input]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for input in inputs {
        let (second, actions) = match *input {
            Input::Reading(second, name, place, quantity, value) => (
                second,
                evaluator.observe(&sensor(name), &room(place), quantity, value, second * S),
            ),
            Input::Tick(second) => (second, evaluator.tick(second * S)),
        };
        out.extend(
            actions
                .into_iter()
                .map(|action| (second, action.to_string())),
        );
    }
    out
}

#[test]
fn several_sensors_rooms_and_rules() {
    let humidity = Rule {
        quantity: Quantity::Humidity,
        room: Some(room("lab")),
        trigger: below(30.0, 2.0, 0, 0),
        message: Template::parse("the {room} air is dry ({value})").unwrap(),
        id: String::new(),
    };
    let mut rules = vec![default_rule(), humidity];
    assign_ids(&mut rules);
    let mut evaluator = Evaluator::new(rules);
    use Input::{Reading, Tick};
    use Quantity::{Humidity, Temperature};
    let actions = run(
        &mut evaluator,
        &[
            Reading(0, "desk", "open space", Temperature, 25.0),
            Reading(0, "window", "kitchen", Temperature, 22.0),
            Reading(0, "hygro", "lab", Humidity, 29.0),
            Reading(0, "hygro-2", "kitchen", Humidity, 10.0),
            Tick(100),
            Reading(200, "window", "kitchen", Temperature, 24.5),
            // No reading of "desk" since 0: the tick carries its last value past for_s.
            Tick(300),
            Tick(499),
            Tick(500),
            Reading(600, "hygro", "lab", Humidity, 31.0),
            Reading(601, "hygro", "lab", Humidity, 32.1),
        ],
    );
    assert_eq!(
        actions,
        [
            (0, "raise humidity-below-30/hygro".to_owned()),
            (300, "raise temperature-above-24/desk".to_owned()),
            (500, "raise temperature-above-24/window".to_owned()),
            (601, "clear humidity-below-30/hygro".to_owned()),
        ]
    );
    let raise = evaluator.observe(&sensor("vent"), &room("lab"), Quantity::Humidity, 12.0, 0);
    assert_eq!(
        raise,
        [Action::Raise {
            name: AlertName::new("humidity-below-30/vent").unwrap(),
            room: room("lab"),
            quantity: Quantity::Humidity,
            message: Message::new("the lab air is dry (12.0%)").unwrap(),
        }]
    );
}

fn alert(cleared: bool) -> Alert {
    Alert {
        room: room("lab"),
        quantity: Quantity::Temperature,
        message: Message::new("hot").unwrap(),
        raised_at_ms: 1,
        cleared_at_ms: cleared.then_some(2),
        at: Hlc {
            wall_ms: 2,
            logical: 0,
        },
    }
}

#[test]
fn a_restored_raised_alert_is_not_raised_again_but_can_clear() {
    let mut evaluator = Evaluator::new(vec![default_rule()]);
    let raised = AlertName::new("temperature-above-24/desk").unwrap();
    let cleared = AlertName::new("temperature-above-24/shelf").unwrap();
    let orphan = AlertName::new("humidity-above-80/desk").unwrap();
    let (hot, done) = (alert(false), alert(true));
    let orphans = evaluator.restore([(&raised, &hot), (&cleared, &done), (&orphan, &hot)], 0);
    assert_eq!(
        orphans,
        [orphan],
        "an alert no rule names any more is cleared"
    );
    use Input::{Reading, Tick};
    let actions = run(
        &mut evaluator,
        &[
            Reading(10, "desk", "lab", Quantity::Temperature, 25.0),
            Tick(1000),
            Reading(1001, "desk", "lab", Quantity::Temperature, 23.0),
            Reading(1002, "shelf", "lab", Quantity::Temperature, 25.0),
            Tick(1302),
        ],
    );
    assert_eq!(
        actions,
        [
            (1001, "clear temperature-above-24/desk".to_owned()),
            (1302, "raise temperature-above-24/shelf".to_owned()),
        ]
    );
}
