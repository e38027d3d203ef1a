//! What the bot answers: a pure function of the office state (read at one moment), who
//! speaks and what they said, returning the reply and the writes it asks for. No I/O and no
//! clock: the time is in the [`Query`], so a table of cases tests every phrase.

use crate::{
    office::write::Write,
    state::{
        Mac, Person, Quantity, Room,
        query::{Query, RoomReading},
    },
};

/// The answer to anything the bot does not understand or has no data for.
pub const SORRY: &str = "I'm sorry, I don't have that data.";

/// What the bot knows when it answers.
#[derive(Clone, Copy)]
pub struct Situation<'a> {
    /// The office state as this node sees it now.
    pub query: Query<'a>,
    /// How many peers this node is connected to.
    pub peers: usize,
    /// The name the bot answers to besides this node's own (`[bot] name`).
    pub bot_name: Option<&'a str>,
}

/// The bot's answer to one message.
#[derive(Clone, Debug)]
pub struct Reply {
    pub text: String,
    /// Writes the caller makes for the reply to be true, as chat-driven writes.
    pub writes: Vec<Write>,
    /// A question about the past: the caller reads the history and answers with
    /// [`past_answer`]; `text` is the answer when the history cannot be read.
    pub past: Option<PastQuestion>,
}

/// "meeting room temp today": a room, a quantity and a day, to answer from the history.
#[derive(Debug, Clone, PartialEq)]
pub struct PastQuestion {
    pub room: Room,
    pub quantity: Quantity,
    pub day: Day,
    /// The word the question used for the quantity ("temp").
    pub word: String,
}

/// Which day a past question is about, in the node's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    Today,
    Yesterday,
}

impl Day {
    pub fn name(self) -> &'static str {
        match self {
            Day::Today => "today",
            Day::Yesterday => "yesterday",
        }
    }
}

/// The readings of a day, summarised: what the history gives a past question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DaySummary {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// The answer to a past question: "meeting room temp today: between 21.0°C and 23.5°C, 22.1°C
/// on average (1440 readings)", or that there is no history for it.
pub fn past_answer(question: &PastQuestion, summary: Option<DaySummary>) -> String {
    let PastQuestion {
        room,
        quantity,
        day,
        word,
    } = question;
    let day = day.name();
    match summary {
        Some(summary) if summary.count > 0 => format!(
            "{room} {word} {day}: between {} and {}, {} on average ({} readings)",
            format_value(*quantity, summary.min),
            format_value(*quantity, summary.max),
            format_value(*quantity, summary.mean),
            summary.count
        ),
        _ => format!(
            "I'm sorry, I have no {} history of the {room} for {day}.",
            quantity.name()
        ),
    }
}

impl Reply {
    fn say(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            writes: Vec::new(),
            past: None,
        }
    }
}

/// Words that carry no meaning in a question about a room ("what's the temperature in the
/// meeting room now?"); they are left out of room names on both sides of a comparison.
const FILLERS: &[&str] = &[
    "whats",
    "what",
    "is",
    "the",
    "hows",
    "how",
    "tell",
    "me",
    "please",
    "now",
    "right",
    "current",
    "currently",
    "level",
    "levels",
    "in",
    "of",
    "at",
    "for",
    "a",
    "it",
    "there",
    "value",
    "reading",
];

/// The words of a message: lower case, apostrophes dropped ("who's" is "whos"), punctuation
/// trimmed from both ends of each word. A leading minus before a digit stays (a value).
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter_map(|word| {
            let word: String = word
                .to_lowercase()
                .chars()
                .filter(|c| !matches!(c, '\'' | '’' | '‘' | '`'))
                .collect();
            let negative =
                word.starts_with('-') && word[1..].starts_with(|c: char| c.is_ascii_digit());
            let trimmed = word.trim_matches(|c: char| !c.is_alphanumeric());
            let word = if negative {
                format!("-{trimmed}")
            } else {
                trimmed.to_owned()
            };
            (!word.is_empty()).then_some(word)
        })
        .collect()
}

/// The comparable form of some words: fillers left out, only letters and digits kept.
fn key_of(words: &[String]) -> String {
    words
        .iter()
        .filter(|word| !FILLERS.contains(&word.as_str()))
        .flat_map(|word| word.chars().filter(|c| c.is_alphanumeric()))
        .collect()
}

fn room_key(room: &Room) -> String {
    key_of(&words(room.as_str()))
}

/// How the words someone used for a room match the rooms of the office.
enum RoomMatch<'a> {
    Found(&'a Room),
    Unknown,
    Ambiguous(Vec<&'a Room>),
}

/// Finds a room loosely: case, spaces, hyphens and fillers do not matter, and a unique
/// beginning is enough ("meeting" for "meeting room").
fn find_room<'a>(rooms: &[&'a Room], asked: &[String]) -> RoomMatch<'a> {
    let key = key_of(asked);
    if key.is_empty() {
        return RoomMatch::Unknown;
    }
    if let Some(room) = rooms.iter().find(|room| room_key(room) == key) {
        return RoomMatch::Found(room);
    }
    let starting: Vec<&'a Room> = rooms
        .iter()
        .copied()
        .filter(|room| room_key(room).starts_with(&key))
        .collect();
    match starting.len() {
        0 => RoomMatch::Unknown,
        1 => RoomMatch::Found(starting[0]),
        _ => RoomMatch::Ambiguous(starting),
    }
}

/// A value in its quantity's canonical unit, as people write it ("22.0°C", "650 ppm").
pub fn format_value(quantity: Quantity, value: f64) -> String {
    match quantity {
        Quantity::Temperature => format!("{value:.1}°C"),
        Quantity::Humidity => format!("{value:.0}%"),
        Quantity::Sound => format!("{value:.0} dB"),
        Quantity::Co2 => format!("{value:.0} ppm"),
        Quantity::Light => format!("{value:.0} lx"),
        Quantity::Pressure => format!("{value:.1} hPa"),
    }
}

/// How long ago, roughly: "12 s ago", "5 min ago", "3 h ago", "2 days ago".
pub fn format_age(age_ms: u64) -> String {
    let seconds = age_ms / 1000;
    match seconds {
        0 => "just now".to_owned(),
        1..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..172_800 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

/// "a", "a and b", "a, b and c".
fn join_naturally(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// The word for a quantity in a reply: the one the person used for the short forms people
/// say ("temp", "noise"), else the quantity's name.
fn quantity_word(quantity: Quantity, said: &str) -> &str {
    match said {
        "temp" | "noise" => said,
        _ => quantity.name(),
    }
}

/// Answers `text` from `speaker`.
pub fn reply(situation: &Situation, speaker: &Person, text: &str) -> Reply {
    let query = &situation.query;
    let rooms = query.rooms();
    let mut words = words(text);
    strip_bot_name(&mut words, situation, &rooms);
    let first = words.first().map(String::as_str).unwrap_or("");
    let has = |word: &str| words.iter().any(|w| w == word);

    if words.is_empty() {
        return Reply::say("Yes? Say \"help\" to see what I can answer.");
    }
    if words == ["help"] || words == ["what", "can", "you", "do"] {
        return help();
    }
    if words == ["status"] {
        return status(situation);
    }
    if has("forget") && words.last().is_some_and(|word| word == "me") {
        return forget(query, speaker);
    }
    if words.len() == 3 && words[0] == "i" && words[1] == "am" {
        return bind(query, speaker, &words[2]);
    }
    if words.len() == 2 && words[0] == "im" {
        return bind(query, speaker, &words[1]);
    }
    let asks_who = matches!(first, "who" | "whos")
        || ["anyone", "anybody", "someone", "somebody"]
            .iter()
            .any(|word| has(word));
    let where_ = ["office", "here", "in", "around", "there", "present"]
        .iter()
        .any(|word| has(word));
    if asks_who && where_ {
        return who(query);
    }
    if first == "set" {
        return set_target(query, speaker, &rooms, &words[1..]);
    }
    if let Some(index) = words
        .iter()
        .position(|word| word.parse::<Quantity>().is_ok())
    {
        return reading(query, &rooms, &words, index);
    }
    Reply::say(SORRY)
}

/// Whether `text` is about the one who says it ("i am ff:ff:...", "forget me"), so that it
/// needs to know who that is; every other phrase answers the same whoever asks. It looks at
/// the end of the message, so a bot name in front does not hide the phrase: it may say yes
/// to a message [`reply`] does not take as one, never no to one it does.
pub fn needs_speaker(text: &str) -> bool {
    let words = words(text);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let forget_me = words.contains(&"forget") && words.last() == Some(&"me");
    let i_am = matches!(words.as_slice(), [.., "i", "am", _] | [.., "im", _]);
    forget_me || i_am
}

/// Drops a leading "bloo," or "stratos": the bot's configured name or this node's name.
/// A node named like a room still answers "kitchen temp": the name stays when what follows
/// it does not start with a room but the whole message does.
fn strip_bot_name(words: &mut Vec<String>, situation: &Situation, rooms: &[&Room]) {
    let mut names: Vec<Vec<String>> = Vec::new();
    if let Some(name) = situation.bot_name {
        names.push(self::words(name));
    }
    if let Some(info) = situation.query.this_node() {
        names.push(self::words(info.name.as_str()));
    }
    let starts_with_room = |words: &[String]| {
        rooms.iter().any(|room| {
            let room_words = self::words(room.as_str());
            !room_words.is_empty() && words.starts_with(&room_words)
        })
    };
    for name in names {
        if name.is_empty() || words.len() <= name.len() || !words.starts_with(&name) {
            continue;
        }
        let rest = &words[name.len()..];
        if starts_with_room(words) && !starts_with_room(rest) {
            return;
        }
        words.drain(..name.len());
        return;
    }
}

fn help() -> Reply {
    Reply::say(
        "I answer, on any node of the office:\n\
         - who's at the office?\n\
         - i am ff:ff:ff:ff:ff:ff (your device's MAC), and forget me\n\
         - meeting room temp (or temperature, hum, humidity, sound, noise, co2), or what's the temperature in the meeting room?\n\
         - meeting room temp today (or yesterday): lowest, highest and mean\n\
         - set the meeting room temperature to 21\n\
         - status\n\
         - help",
    )
}

fn status(situation: &Situation) -> Reply {
    let nodes = situation.query.nodes();
    let up: Vec<String> = nodes
        .iter()
        .filter(|node| node.up)
        .map(|node| node.info.name.to_string())
        .collect();
    let silent: Vec<String> = nodes
        .iter()
        .filter(|node| !node.up)
        .map(|node| {
            format!(
                "{} (last heard {})",
                node.info.name,
                format_age(node.age_ms)
            )
        })
        .collect();
    let mut text = format!(
        "{} up: {}.",
        plural(up.len(), "node", "nodes"),
        join_naturally(&up)
    );
    if up.is_empty() {
        text = "No node is up.".to_owned();
    }
    if !silent.is_empty() {
        text.push_str(&format!(" Silent: {}.", join_naturally(&silent)));
    }
    text.push_str(&format!(
        " Connected to {}.",
        plural(situation.peers, "peer", "peers")
    ));
    let rooms: Vec<String> = situation
        .query
        .rooms()
        .iter()
        .map(ToString::to_string)
        .collect();
    if rooms.is_empty() {
        text.push_str(" No rooms yet.");
    } else {
        text.push_str(&format!(" Rooms: {}.", rooms.join(", ")));
    }
    Reply::say(text)
}

fn who(query: &Query) -> Reply {
    let people: Vec<String> = query
        .people()
        .iter()
        .filter(|person| person.present)
        .map(|person| person.name.to_string())
        .collect();
    let unknown = query
        .devices()
        .iter()
        .filter(|device| device.present && device.people.is_empty())
        .count();
    let devices = plural(unknown, "unknown device", "unknown devices");
    let text = match (people.is_empty(), unknown) {
        (true, 0) => "Well, I don't see anyone here".to_owned(),
        (true, _) => format!("Well, I don't see anyone I know, but I see {devices}"),
        (false, 0) => format!("Well, I see {}", join_naturally(&people)),
        (false, _) => format!("Well, I see {}, and {devices}", join_naturally(&people)),
    };
    Reply::say(text)
}

fn bind(query: &Query, speaker: &Person, said: &str) -> Reply {
    let Ok(mac) = said.parse::<Mac>() else {
        return Reply::say(
            "Tell me your device's MAC address, like \"i am ff:ff:ff:ff:ff:ff\" \
             (the dashboard lists the devices on the network).",
        );
    };
    let mut text = format!("Ok, you are {mac}");
    let devices = query.devices();
    let device = devices.iter().find(|device| device.mac == mac);
    let others: Vec<String> = device
        .map(|device| {
            device
                .people
                .iter()
                .filter(|person| **person != speaker)
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !others.is_empty() {
        text.push_str(&format!(" (so is {})", join_naturally(&others)));
    }
    if device.is_none() {
        text.push_str(". I haven't seen that device on the network yet");
    }
    if mac.is_locally_administered() {
        text.push_str(
            ". Careful: that is a randomised (locally administered) address, which your \
             device may change; turn off MAC randomisation for the office network so I keep \
             recognising you",
        );
    }
    Reply {
        text,
        writes: vec![Write::Bind {
            person: speaker.clone(),
            mac,
        }],
        past: None,
    }
}

fn forget(query: &Query, speaker: &Person) -> Reply {
    let devices = query.devices_of(speaker);
    if devices.is_empty() {
        return Reply::say(format!("I didn't know any device of yours, {speaker}"));
    }
    let names: Vec<String> = devices.iter().map(ToString::to_string).collect();
    Reply {
        text: format!("Ok, I forgot you ({})", join_naturally(&names)),
        writes: devices
            .into_iter()
            .map(|mac| Write::Unbind {
                person: speaker.clone(),
                mac,
            })
            .collect(),
        past: None,
    }
}

/// The room the words name, or the reply that says why there is none.
fn resolve_room<'a>(rooms: &[&'a Room], asked: &[String]) -> Result<&'a Room, Reply> {
    match find_room(rooms, asked) {
        RoomMatch::Found(room) => Ok(room),
        RoomMatch::Ambiguous(candidates) => {
            let names: Vec<String> = candidates.iter().map(ToString::to_string).collect();
            Err(Reply::say(format!(
                "Which one: {}?",
                join_naturally(&names)
            )))
        }
        RoomMatch::Unknown => {
            let names: Vec<String> = rooms.iter().map(ToString::to_string).collect();
            let known = if names.is_empty() {
                "I know no rooms yet".to_owned()
            } else {
                format!("I know {}", join_naturally(&names))
            };
            Err(Reply::say(format!(
                "I'm sorry, I don't know a room called \"{}\" ({known}).",
                asked
                    .iter()
                    .filter(|word| !FILLERS.contains(&word.as_str()))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            )))
        }
    }
}

fn reading(query: &Query, rooms: &[&Room], words: &[String], index: usize) -> Reply {
    let said = words[index].as_str();
    let Ok(quantity) = said.parse::<Quantity>() else {
        return Reply::say(SORRY);
    };
    let word = quantity_word(quantity, said);
    let mut asked: Vec<String> = words[..index].to_vec();
    asked.extend_from_slice(&words[index + 1..]);
    let day = asked.iter().find_map(|word| match word.as_str() {
        "today" => Some(Day::Today),
        "yesterday" => Some(Day::Yesterday),
        _ => None,
    });
    if let Some(day) = day {
        asked.retain(|word| word != "today" && word != "yesterday");
        if key_of(&asked).is_empty() {
            return Reply::say(format!(
                "Which room? Say for example \"meeting room {word} {}\".",
                day.name()
            ));
        }
        let room = match resolve_room(rooms, &asked) {
            Ok(room) => room,
            Err(reply) => return reply,
        };
        return Reply {
            past: Some(PastQuestion {
                room: room.clone(),
                quantity,
                day,
                word: word.to_owned(),
            }),
            ..Reply::say("I'm sorry, I cannot read the history right now.")
        };
    }
    if key_of(&asked).is_empty() {
        // No room: every room that has this quantity, one per line.
        let lines: Vec<String> = rooms
            .iter()
            .filter_map(|room| describe_readings(query, room, quantity, word))
            .collect();
        if lines.is_empty() {
            return Reply::say(SORRY);
        }
        return Reply::say(lines.join("\n"));
    }
    let room = match resolve_room(rooms, &asked) {
        Ok(room) => room,
        Err(reply) => return reply,
    };
    match describe_readings(query, room, quantity, word) {
        Some(text) => Reply::say(text),
        None => Reply::say(format!(
            "I'm sorry, I don't have that data: no {} reading in the {room}.",
            quantity.name()
        )),
    }
}

/// "meeting room temp is 22.0°C (12 s ago)", or `None` without a reading. Several sensors:
/// the mean of the fresh ones; only stale ones: the last values, said to be stale.
fn describe_readings(query: &Query, room: &Room, quantity: Quantity, word: &str) -> Option<String> {
    let readings = query.readings_of(room, quantity);
    if readings.is_empty() {
        return None;
    }
    let fresh: Vec<&RoomReading> = readings.iter().filter(|r| !r.stale).collect();
    let stale = readings.len() - fresh.len();
    let mut text = if fresh.is_empty() {
        let (value, newest) = mean_and_newest(&readings.iter().collect::<Vec<_>>());
        let of = if readings.len() > 1 {
            format!(", the mean of {} sensors", readings.len())
        } else {
            String::new()
        };
        format!(
            "{room} {word} was {} ({}{of}), but that is stale: no recent reading",
            format_value(quantity, value),
            format_age(newest)
        )
    } else {
        let (value, newest) = mean_and_newest(&fresh);
        let detail = if fresh.len() > 1 {
            let each: Vec<String> = fresh
                .iter()
                .map(|r| format_value(quantity, r.reading.value))
                .collect();
            format!(
                "mean of {} sensors: {}; newest {}",
                fresh.len(),
                each.join(", "),
                format_age(newest)
            )
        } else {
            format_age(newest)
        };
        let mut text = format!(
            "{room} {word} is {} ({detail})",
            format_value(quantity, value)
        );
        if stale > 0 {
            text.push_str(&format!(
                "; left out {} with no recent reading",
                plural(stale, "stale sensor", "stale sensors")
            ));
        }
        text
    };
    if let Some(target) = query.target(room, quantity) {
        text.push_str(&format!(
            "; the target is {}",
            format_value(quantity, target.winner.value)
        ));
        if !target.concurrent.is_empty() {
            let others: Vec<String> = target
                .concurrent
                .iter()
                .map(|other| {
                    format!(
                        "{} by {}",
                        format_value(quantity, other.value),
                        other.set_by
                    )
                })
                .collect();
            text.push_str(&format!(
                " (also set at the same time: {})",
                join_naturally(&others)
            ));
        }
    }
    Some(text)
}

/// The mean value and the age of the newest of some readings (not empty).
fn mean_and_newest(readings: &[&RoomReading]) -> (f64, u64) {
    let sum: f64 = readings.iter().map(|r| r.reading.value).sum();
    let newest = readings.iter().map(|r| r.age_ms).min().unwrap_or(0);
    (sum / readings.len() as f64, newest)
}

fn set_target(query: &Query, speaker: &Person, rooms: &[&Room], words: &[String]) -> Reply {
    const EXAMPLE: &str = "say for example \"set the meeting room temperature to 21\"";
    let Some(to) = words.iter().rposition(|word| word == "to") else {
        return Reply::say(format!("Set it to what? {EXAMPLE}."));
    };
    let (subject, value_words) = (&words[..to], &words[to + 1..]);
    let Some(index) = subject
        .iter()
        .position(|word| word.parse::<Quantity>().is_ok())
    else {
        return Reply::say(format!("Set which quantity? {EXAMPLE}."));
    };
    let quantity: Quantity = subject[index].parse().expect("checked above");
    let asked: Vec<String> = subject
        .iter()
        .enumerate()
        .filter(|(position, word)| {
            *position != index && !matches!(word.as_str(), "target" | "setpoint")
        })
        .map(|(_, word)| word.clone())
        .collect();
    if key_of(&asked).is_empty() {
        return Reply::say(format!("In which room? {EXAMPLE}."));
    }
    let room = match resolve_room(rooms, &asked) {
        Ok(room) => room,
        Err(reply) => return reply,
    };
    let said = value_words.concat();
    let number_len = said
        .char_indices()
        .find(|(at, c)| !(c.is_ascii_digit() || *c == '.' || (*at == 0 && *c == '-')))
        .map_or(said.len(), |(at, _)| at);
    let (number, unit) = said.split_at(number_len);
    let Ok(number) = number.parse::<f64>() else {
        return Reply::say(format!("Set it to what number? {EXAMPLE}."));
    };
    let value = match quantity.normalize(number, unit) {
        Ok(value) => value,
        Err(error) => {
            return Reply::say(format!(
                "I can't set the {room} {} to that: {error}.",
                quantity.name()
            ));
        }
    };
    let mut text = format!(
        "Ok, the {room} {} target is now {}",
        quantity.name(),
        format_value(quantity, value)
    );
    if let Some(current) = query.target(room, quantity)
        && !current.concurrent.is_empty()
    {
        let others: Vec<String> = std::iter::once(current.winner)
            .chain(current.concurrent.iter().copied())
            .filter(|other| other.set_by != *speaker || other.value != value)
            .map(|other| {
                format!(
                    "{} set {}",
                    other.set_by,
                    format_value(quantity, other.value)
                )
            })
            .collect();
        text.push_str(&format!(
            ". Note: {} at the same time; yours replaces them",
            join_naturally(&others)
        ));
    }
    Reply {
        text,
        writes: vec![Write::Target {
            room: room.clone(),
            quantity,
            value: number,
            unit: unit.to_owned(),
            set_by: speaker.clone(),
        }],
        past: None,
    }
}
