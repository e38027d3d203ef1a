//! Sensor sources: what turns the physical office into readings. Each source fails on its
//! own, logs a clear line and retries; none can take the node down.
//!
//! A [`Source`] is one configured (or detected) sensor: Linux hwmon, IIO and 1-wire files
//! under the sysfs root, a command, or an MQTT topic. [`run`] reads it on its interval (or
//! listens, for MQTT), calibrates and checks each value against its quantity's physical range,
//! and sends the good ones as [`Sample`]s over a bounded channel; [`forward`] writes them to
//! the office. The parse functions of each kind are pure and tested with the kernel's formats.

pub mod command;
pub mod config;
pub mod health;
pub mod hwmon;
pub mod iio;
pub mod mqtt;
pub mod simulated;
pub mod w1;

use std::{
    collections::BTreeMap,
    io::Read as _,
    path::{Path, PathBuf},
    time::Duration,
};

use thiserror::Error;
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use self::config::{DEFAULT_SYSFS_ROOT, SensorsConfig};
use self::health::{Change, Health};
use crate::{
    office::{OfficeError, OfficeHandle, Write},
    state::{InvalidValue, Quantity, Room, SensorId},
};

/// Samples waiting to be written to the office. Sources wait when it is full (a stalled
/// office slows the sensors down rather than queueing without bound).
pub const SAMPLE_CAPACITY: usize = 64;

/// The most read from one sysfs attribute: the kernel's own limit is a page.
const MAX_ATTRIBUTE_BYTES: u64 = 4096;

/// How long `officemesh sensors` waits for an MQTT source's first message.
pub const SURVEY_MQTT_WAIT: Duration = Duration::from_secs(5);

/// What one read of a source gave: a value of a quantity in `unit` (one that
/// [`Quantity::normalize`] knows; empty for the canonical unit), before calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub quantity: Quantity,
    pub value: f64,
    pub unit: String,
}

/// A reading ready for the office: calibrated, in the canonical unit, within range.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub sensor: SensorId,
    pub room: Room,
    pub quantity: Quantity,
    pub value: f64,
}

/// Why a read gave no reading.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error("{0}")]
    Missing(String),
    #[error("{program}: {message}")]
    Command { program: String, message: String },
    #[error("value dropped: {0}")]
    Invalid(#[from] InvalidValue),
    #[error("{0}")]
    Unsupported(&'static str),
}

/// Reads a small sysfs attribute. A file that vanished (a driver unloaded, a probe
/// unplugged) is an error like any other, never a panic.
pub fn read_attribute(path: &Path) -> Result<String, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    file.take(MAX_ATTRIBUTE_BYTES)
        .read_to_string(&mut text)
        .map_err(io)?;
    Ok(text)
}

/// A class of sysfs device directories, `<root>/<dir>/<prefix>N`, each naming itself in a
/// `name` file: hwmon chips and IIO devices are both found this way.
pub(crate) struct DeviceClass {
    /// Below `sysfs_root`, like `class/hwmon`.
    pub dir: &'static str,
    /// The directories' prefix, like `hwmon`.
    pub prefix: &'static str,
    /// What a device is called in errors, like "hwmon chip".
    pub what: &'static str,
}

impl DeviceClass {
    /// The device directories under `root`, in name order.
    pub fn list(&self, root: &Path) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join(self.dir))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(self.prefix))
            .map(|entry| entry.path())
            .collect();
        dirs.sort();
        dirs
    }

    /// The directory of the device called `wanted`: its `name` file, or its directory name.
    pub fn find(&self, root: &Path, wanted: &str) -> Result<PathBuf, ReadError> {
        let base = root.join(self.dir);
        if wanted.starts_with(self.prefix) && base.join(wanted).is_dir() {
            return Ok(base.join(wanted));
        }
        self.list(root)
            .into_iter()
            .find(|dir| device_name(dir).as_deref() == Some(wanted))
            .ok_or_else(|| {
                ReadError::Missing(format!(
                    "no {} named {wanted:?} under {}",
                    self.what,
                    base.display()
                ))
            })
    }
}

/// What a sysfs device calls itself (its `name` file), if anything.
pub(crate) fn device_name(dir: &Path) -> Option<String> {
    read_attribute(&dir.join("name"))
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// Where a source reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Hwmon(hwmon::Channel),
    Iio(iio::Channel),
    W1(w1::Probe),
    Command(command::Command),
    Mqtt(mqtt::Subscription),
}

/// One sensor source, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The sensor id its readings are written under (with `/<quantity>` appended when the
    /// source reports several quantities).
    pub id: String,
    /// `None`: the node's room.
    pub room: Option<Room>,
    /// How often it is read; for MQTT, how often the device is expected to report.
    pub interval: Duration,
    /// Added to every value, in the quantity's canonical unit: a calibration.
    pub offset: f64,
    /// Only this quantity is taken from a source that reports several.
    pub only: Option<Quantity>,
    pub kind: Kind,
}

impl Source {
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Hwmon(_) => "hwmon",
            Kind::Iio(_) => "iio",
            Kind::W1(_) => "w1",
            Kind::Command(_) => "command",
            Kind::Mqtt(subscription) => match subscription.format {
                mqtt::Format::Zigbee2Mqtt => "zigbee2mqtt",
                mqtt::Format::Tasmota { .. } => "tasmota",
                mqtt::Format::Plain { .. } => "mqtt",
            },
        }
    }

    /// Whether readings go under `<id>/<quantity>`: a Zigbee2MQTT or Tasmota device reports
    /// several quantities, and a sensor id holds one.
    pub fn reports_several(&self) -> bool {
        self.only.is_none()
            && matches!(
                &self.kind,
                Kind::Mqtt(mqtt::Subscription {
                    format: mqtt::Format::Zigbee2Mqtt | mqtt::Format::Tasmota { .. },
                    ..
                })
            )
    }

    /// The sensor id of this source's readings of `quantity`.
    pub fn sensor_id(&self, quantity: Quantity) -> Result<SensorId, InvalidValue> {
        if self.reports_several() {
            SensorId::new(&format!("{}/{}", self.id, quantity.name()))
        } else {
            SensorId::new(&self.id)
        }
    }

    /// Where the source reads from, for people.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Hwmon(channel) => format!("hwmon chip {} {}", channel.chip, channel.channel),
            Kind::Iio(channel) => format!("IIO device {} {}", channel.device, channel.channel),
            Kind::W1(probe) => format!("1-wire {}", probe.device),
            Kind::Command(command) => format!("command {}", command.argv.join(" ")),
            Kind::Mqtt(subscription) => format!(
                "MQTT {}:{} {}",
                subscription.host, subscription.port, subscription.topic
            ),
        }
    }

    /// Reads a polled source once (files off the async threads: a 1-wire read blocks for
    /// most of a second).
    pub async fn read_once(&self, root: &Path) -> Result<Vec<Measured>, ReadError> {
        match &self.kind {
            Kind::Command(command) => return command.read().await.map(|measured| vec![measured]),
            Kind::Mqtt(_) => {
                return Err(ReadError::Unsupported(
                    "an MQTT source is listened to, not read",
                ));
            }
            Kind::Hwmon(_) | Kind::Iio(_) | Kind::W1(_) => {}
        }
        let kind = self.kind.clone();
        let root = root.to_owned();
        tokio::task::spawn_blocking(move || match &kind {
            Kind::Hwmon(channel) => channel.read(&root),
            Kind::Iio(channel) => channel.read(&root),
            Kind::W1(probe) => probe.read(&root),
            Kind::Command(_) | Kind::Mqtt(_) => unreachable!("handled above"),
        })
        .await
        .unwrap_or_else(|error| Err(ReadError::Missing(format!("the read failed: {error}"))))
        .map(|measured| vec![measured])
    }
}

/// Converts a measured value to its canonical unit, adds the calibration offset and checks
/// the result against the quantity's physical range. Rounded to thousandths, the finest step
/// any of the sources resolves.
pub fn calibrate(measured: &Measured, offset: f64) -> Result<f64, InvalidValue> {
    let quantity = measured.quantity;
    let canonical = quantity.normalize(measured.value, &measured.unit)?;
    let calibrated = quantity.check(canonical + offset)?;
    Ok((calibrated * 1000.0).round() / 1000.0)
}

/// The office stopped taking samples: the node is shutting down.
#[derive(Debug)]
pub struct Stopped;

/// Turns one source's reads into samples and its health changes into log lines.
pub struct Reporter {
    source: Source,
    room: Room,
    samples: mpsc::Sender<Sample>,
    health: Health,
    name: String,
}

impl Reporter {
    fn new(source: Source, node_room: &Room, samples: mpsc::Sender<Sample>) -> Reporter {
        let name = format!("{} ({})", source.id, source.kind_name());
        Reporter {
            room: source.room.clone().unwrap_or_else(|| node_room.clone()),
            source,
            samples,
            health: Health::default(),
            name,
        }
    }

    /// The source's id and kind, as warnings name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends the good values of one read and logs what changed: the first failure, and the
    /// recovery. A read with some bad values sends the good ones and counts as a failure.
    pub async fn report(
        &mut self,
        result: Result<Vec<Measured>, ReadError>,
    ) -> Result<(), Stopped> {
        let problem = match result {
            Err(error) => Some(error.to_string()),
            Ok(readings) => {
                let (samples, dropped) = self.samples_of(readings);
                for sample in samples {
                    self.samples.send(sample).await.map_err(|_| Stopped)?;
                }
                dropped.into_iter().next_back()
            }
        };
        let change = match &problem {
            Some(error) => self.health.failure(error),
            None => self.health.success(),
        };
        self.log(change);
        Ok(())
    }

    /// The samples of one read, and why each dropped value was dropped.
    fn samples_of(&self, readings: Vec<Measured>) -> (Vec<Sample>, Vec<String>) {
        let mut samples = Vec::new();
        let mut dropped = Vec::new();
        for measured in readings {
            if self
                .source
                .only
                .is_some_and(|only| only != measured.quantity)
            {
                continue;
            }
            let sample = calibrate(&measured, self.source.offset).and_then(|value| {
                Ok(Sample {
                    sensor: self.source.sensor_id(measured.quantity)?,
                    room: self.room.clone(),
                    quantity: measured.quantity,
                    value,
                })
            });
            match sample {
                Ok(sample) => samples.push(sample),
                Err(error) => dropped.push(format!("value dropped: {error}")),
            }
        }
        (samples, dropped)
    }

    /// Nothing arrived for `silent`, more than the `allowed` silence.
    pub fn silence(&mut self, silent: Duration, allowed: Duration) {
        let change = self.health.silence(silent, allowed);
        self.log(change);
    }

    fn log(&self, change: Option<Change>) {
        match change {
            None => {}
            Some(Change::Failing { error }) => warn!(
                source = %self.name,
                %error,
                "sensor not answering; its last reading stays and ages (stale); retrying with backoff"
            ),
            Some(Change::Recovered { failures }) => {
                info!(source = %self.name, failures, "sensor answering again")
            }
            Some(Change::Silent { silent }) => warn!(
                source = %self.name,
                silent_s = silent.as_secs(),
                "sensor silent; its last reading stays and ages (stale)"
            ),
        }
    }
}

/// Runs one source until `shutdown`: reads it every interval (backing off while it fails),
/// or listens to its MQTT topic, and sends its samples.
pub async fn run(
    source: Source,
    sysfs_root: PathBuf,
    node_room: Room,
    samples: mpsc::Sender<Sample>,
    shutdown: CancellationToken,
) {
    let interval = source.interval;
    let mut reporter = Reporter::new(source.clone(), &node_room, samples);
    if let Kind::Mqtt(subscription) = &source.kind {
        subscription.run(&mut reporter, interval, &shutdown).await;
        return;
    }
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = source.read_once(&sysfs_root) => result,
        };
        if reporter.report(result).await.is_err() {
            return;
        }
        let delay = reporter.health.next_delay(interval);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Writes samples to the office until every source has stopped or the office has.
pub async fn forward(mut samples: mpsc::Receiver<Sample>, office: OfficeHandle) {
    while let Some(sample) = samples.recv().await {
        let write = Write::Reading {
            sensor: sample.sensor.clone(),
            room: sample.room,
            quantity: sample.quantity,
            value: sample.value,
            unit: sample.quantity.unit().to_owned(),
        };
        match office.write(write).await {
            Ok(()) => {}
            Err(OfficeError::Stopped) => return,
            Err(error) => warn!(%error, sensor = %sample.sensor, "reading not recorded"),
        }
    }
}

/// A sensor that auto-detection found.
#[derive(Debug, Clone)]
pub struct Detected {
    pub source: Source,
    /// The file it is read from.
    pub path: PathBuf,
    /// The driver's label for it, if any.
    pub label: Option<String>,
}

/// What auto-detection found under a sysfs root, and what it skipped and why.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    pub found: Vec<Detected>,
    pub skipped: Vec<String>,
}

/// Every hwmon, IIO and 1-wire sensor under `root`, each a source in the node's room with
/// its kind's default interval. Ids are `<chip>/<label or channel>`, `<device>/<channel>` and
/// the 1-wire device id.
pub fn detect(root: &Path) -> Detection {
    let mut detection = Detection::default();
    let mut push = |id: String, kind: Kind, path: PathBuf, label: Option<String>| {
        let kind_name = match kind {
            Kind::Hwmon(_) => "hwmon",
            Kind::Iio(_) => "iio",
            _ => "w1",
        };
        detection.found.push(Detected {
            source: Source {
                id,
                room: None,
                interval: config::default_interval(kind_name),
                offset: 0.0,
                only: None,
                kind,
            },
            path,
            label,
        });
    };
    let (hwmon, skipped) = hwmon::detect(root);
    for found in hwmon {
        let labelled = found
            .label
            .as_ref()
            .map(|label| format!("{}/{label}", found.channel.chip))
            .filter(|id| SensorId::new(id).is_ok());
        let id =
            labelled.unwrap_or_else(|| format!("{}/{}", found.channel.chip, found.channel.channel));
        push(id, Kind::Hwmon(found.channel), found.path, found.label);
    }
    for found in iio::detect(root) {
        let id = format!("{}/{}", found.channel.device, found.channel.channel);
        push(id, Kind::Iio(found.channel), found.path, None);
    }
    for (probe, path) in w1::detect(root) {
        push(probe.device.clone(), Kind::W1(probe), path, None);
    }
    detection.skipped = skipped;
    // Two chips with one name, or two channels with one label, would share a sensor id
    // and overwrite each other's readings: number the later ones.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for detected in &mut detection.found {
        let count = seen.entry(detected.source.id.clone()).or_default();
        *count += 1;
        if *count > 1 {
            detected.source.id = format!("{}#{count}", detected.source.id);
        }
    }
    detection
        .found
        .retain(|detected| SensorId::new(&detected.source.id).is_ok());
    detection
}

/// The sources a node runs: the configured ones or, when none are configured and
/// `auto_detect` is on, the detected ones (logged).
pub fn sources(config: &SensorsConfig) -> Vec<Source> {
    if !config.sources.is_empty() || !config.auto_detect {
        return config.sources.clone();
    }
    let detection = detect(&config.sysfs_root);
    for skipped in &detection.skipped {
        info!(chip = %skipped, "hwmon chip skipped by auto-detection");
    }
    if detection.found.is_empty() {
        info!(sysfs_root = %config.sysfs_root.display(), "no hwmon, IIO or 1-wire sensors detected");
    }
    for detected in &detection.found {
        info!(
            sensor = %detected.source.id,
            path = %detected.path.display(),
            "sensor detected"
        );
    }
    detection
        .found
        .into_iter()
        .map(|found| found.source)
        .collect()
}

/// Starts the node's sources (configured or detected) in `tasks`, writing to `office`.
/// Returns how many there are.
pub fn spawn(
    tasks: &mut JoinSet<()>,
    config: &SensorsConfig,
    node_room: &Room,
    office: OfficeHandle,
    shutdown: &CancellationToken,
) -> usize {
    let sources = sources(config);
    if sources.is_empty() {
        return 0;
    }
    let (sender, receiver) = mpsc::channel(SAMPLE_CAPACITY);
    for source in &sources {
        tasks.spawn(run(
            source.clone(),
            config.sysfs_root.clone(),
            node_room.clone(),
            sender.clone(),
            shutdown.clone(),
        ));
    }
    tasks.spawn(forward(receiver, office));
    sources.len()
}

/// One line of `officemesh sensors`: a source and what reading it now gives.
#[derive(Debug)]
pub struct Survey {
    pub source: Source,
    pub room: Room,
    pub readings: Result<Vec<Sample>, String>,
}

/// Reads every source once (an MQTT source: waits up to [`SURVEY_MQTT_WAIT`] for its first
/// message), for `officemesh sensors`. Returns the detection too when nothing is configured.
pub async fn survey(config: &SensorsConfig, node_room: &Room) -> (Vec<Survey>, Option<Detection>) {
    let (sources, detection) = if config.sources.is_empty() {
        let detection = detect(&config.sysfs_root);
        let sources = detection
            .found
            .iter()
            .map(|found| found.source.clone())
            .collect();
        (sources, Some(detection))
    } else {
        (config.sources.clone(), None)
    };
    let mut lines = Vec::new();
    for source in sources {
        let (sender, mut receiver) = mpsc::channel(SAMPLE_CAPACITY);
        let mut reporter = Reporter::new(source.clone(), node_room, sender);
        let room = reporter.room.clone();
        let readings = if let Kind::Mqtt(subscription) = &source.kind {
            let stop = CancellationToken::new();
            let listen = subscription.run(&mut reporter, source.interval, &stop);
            let first = async {
                let first = receiver.recv().await;
                stop.cancel();
                first
            };
            match tokio::time::timeout(SURVEY_MQTT_WAIT, async { tokio::join!(listen, first).1 })
                .await
            {
                Ok(Some(sample)) => {
                    let mut samples = vec![sample];
                    while let Ok(more) = receiver.try_recv() {
                        samples.push(more);
                    }
                    Ok(samples)
                }
                _ => Err(format!("no message within {SURVEY_MQTT_WAIT:?}")),
            }
        } else {
            match source.read_once(&config.sysfs_root).await {
                Err(error) => Err(error.to_string()),
                Ok(readings) => match reporter.samples_of(readings) {
                    (samples, dropped) if samples.is_empty() && !dropped.is_empty() => {
                        Err(dropped.join("; "))
                    }
                    (samples, _) => Ok(samples),
                },
            }
        };
        lines.push(Survey {
            source,
            room,
            readings,
        });
    }
    (lines, detection)
}
