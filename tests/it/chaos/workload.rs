//! What the office's users do during the chaos: readings posted to random nodes, targets set
//! from several nodes (and the same room from both sides of a partition), "i am" bindings,
//! and readings that cross an alert rule. Every write is recorded with when it was sent and,
//! if the API acknowledged it (2xx), when.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use officemesh::sim::SimRng;
use serde_json::json;

use crate::support::node::request;

/// The room of the sensors that cross the alert rule, and the rule's threshold (°C).
pub const ALARM_ROOM: &str = "alarm room";
pub const ALARM_ABOVE: f64 = 28.0;
/// Rooms the ordinary readings and targets go to.
const ROOMS: u64 = 3;
/// Sensors per node for ordinary readings.
const SENSORS: u64 = 3;
/// The highest temperature a node accepts (°C): alarm values stay below it.
const HIGHEST: f64 = 125.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Reading,
    Target,
    Binding,
}

/// One write the workload sent.
#[derive(Clone, Debug)]
pub struct Write {
    pub kind: Kind,
    /// Reading: `<peer id>/<sensor>`; target: the room (quantity temperature); binding:
    /// `<person>/<mac>`.
    pub key: String,
    /// What identifies this write in a node's state. Reading: the value with two decimals;
    /// target: its `set_by`; binding: the MAC.
    pub value: String,
    pub host: usize,
    pub sent_at: Instant,
    /// When the API answered 2xx; `None` if it refused or did not answer.
    pub acked_at: Option<Instant>,
}

/// A node the workload may write to now.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: usize,
    pub http: SocketAddr,
    pub peer_id: String,
}

pub struct Workload {
    rng: SimRng,
    pub writes: Vec<Write>,
    counter: u64,
    /// Per host: whether its alarm sensor's last acknowledged value is above the rule, and
    /// how many high values it has sent (each high value is unique, so each crossing's
    /// announcement names it).
    alarm_high: Vec<bool>,
    alarm_highs_sent: Vec<u32>,
    /// The announcement texts a crossing could have caused (its reading sent).
    pub crossing_texts: Vec<String>,
    /// Crossings whose reading the node acknowledged.
    pub crossings_acknowledged: usize,
    /// Rooms set from both sides of a partition: the two `set_by`s, when both were
    /// acknowledged.
    pub contested: Vec<(String, [String; 2])>,
}

impl Workload {
    pub fn new(rng: SimRng, hosts: usize) -> Workload {
        Workload {
            rng,
            writes: Vec::new(),
            counter: 0,
            alarm_high: vec![false; hosts],
            alarm_highs_sent: vec![0; hosts],
            crossing_texts: Vec::new(),
            crossings_acknowledged: 0,
            contested: Vec::new(),
        }
    }

    /// How long to wait before the next operation: a few operations a second per node.
    pub fn pace(&mut self) -> Duration {
        Duration::from_millis(30 + self.rng.below(90))
    }

    /// One operation on one of `targets`, chosen at random.
    pub fn step(&mut self, targets: &[Target]) {
        if targets.is_empty() {
            return;
        }
        let target = targets[self.rng.index(targets.len())].clone();
        self.counter += 1;
        match self.rng.below(10) {
            0..=4 => {
                let sensor = format!("s{}", self.rng.below(SENSORS));
                let room = format!("room {}", self.rng.below(ROOMS));
                let value = (1500 + self.rng.below(1000)) as f64 / 100.0;
                self.reading(&target, &sensor, &room, value);
            }
            5 | 6 => {
                let room = format!("room {}", self.rng.below(ROOMS));
                let value = (180 + self.rng.below(60)) as f64 / 10.0;
                let set_by = format!("op{}", self.counter);
                self.target(&target, &room, value, &set_by);
            }
            7 => self.binding(&target),
            _ => self.alarm(&target),
        }
    }

    fn reading(&mut self, target: &Target, sensor: &str, room: &str, value: f64) -> bool {
        let body = json!({
            "sensor": sensor, "room": room, "quantity": "temperature", "value": value,
        })
        .to_string();
        self.send(
            Kind::Reading,
            target,
            format!("{}/{sensor}", target.peer_id),
            format!("{value:.2}"),
            "POST",
            "/api/readings".to_owned(),
            body,
        )
        .is_some()
    }

    fn target(&mut self, target: &Target, room: &str, value: f64, set_by: &str) -> bool {
        let body = json!({"value": value, "set_by": set_by}).to_string();
        self.send(
            Kind::Target,
            target,
            room.to_owned(),
            set_by.to_owned(),
            "PUT",
            format!("/api/targets/{}/temperature", room.replace(' ', "%20")),
            body,
        )
        .is_some()
    }

    fn binding(&mut self, target: &Target) {
        let n = self.counter;
        let mac = format!(
            "02:00:00:{:02x}:{:02x}:{:02x}",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        );
        let person = format!("p{n}");
        let body = json!({"text": format!("i am {mac}"), "speaker": person}).to_string();
        let answer = self.send(
            Kind::Binding,
            target,
            format!("{person}/{mac}"),
            mac.clone(),
            "POST",
            "/api/ask".to_owned(),
            body,
        );
        // The bot answers 200 to everything it understood; only "Ok, you are" is a binding.
        if let Some(reply) = answer
            && !reply.contains("Ok, you are")
            && let Some(write) = self.writes.last_mut()
        {
            write.acked_at = None;
        }
    }

    /// A reading of the host's alarm sensor on the other side of the rule than its last
    /// acknowledged one.
    fn alarm(&mut self, target: &Target) {
        let host = target.host;
        let sensor = format!("alarm-{}", host + 1);
        if self.alarm_high[host] {
            if self.reading(target, &sensor, ALARM_ROOM, 20.0) {
                self.alarm_high[host] = false;
            }
        } else {
            let value = 30.0 + f64::from(self.alarm_highs_sent[host]) / 10.0;
            if value > HIGHEST {
                return;
            }
            self.alarm_highs_sent[host] += 1;
            // The rule's message is "{sensor} crossed at {value}", the value with one decimal.
            self.crossing_texts
                .push(format!("{sensor} crossed at {value:.1}°C"));
            if self.reading(target, &sensor, ALARM_ROOM, value) {
                self.alarm_high[host] = true;
                self.crossings_acknowledged += 1;
            }
        }
    }

    /// The same room's target set from one node on each side of a partition.
    pub fn contest(&mut self, room: &str, sides: [&Target; 2]) {
        let set_by = [
            format!("{}-a", room.replace(' ', "")),
            format!("{}-b", room.replace(' ', "")),
        ];
        let a = self.target(sides[0], room, 19.0, &set_by[0]);
        let b = self.target(sides[1], room, 23.0, &set_by[1]);
        if a && b {
            self.contested.push((room.to_owned(), set_by));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        kind: Kind,
        target: &Target,
        key: String,
        value: String,
        method: &str,
        path: String,
        body: String,
    ) -> Option<String> {
        let sent_at = Instant::now();
        let answer = request(target.http, method, &path, Some(&body)).ok();
        self.writes.push(Write {
            kind,
            key,
            value,
            host: target.host,
            sent_at,
            acked_at: answer.as_ref().map(|_| Instant::now()),
        });
        answer
    }
}
