//! Sensor sources against the real things they read: fake sysfs trees in temp dirs written
//! in the kernel's exact formats, real programs, and a real Mosquitto broker that each test
//! starts on a free loopback port; and a real node on a fake tree whose readings show up in
//! another node's `/api/state`.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use officemesh::{
    config::Config,
    sensors::{self, Sample, SensorsConfig, Source},
    state::Room,
};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::Value;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::support::{
    DEADLINE, eventually,
    node::{Node, NodeBuilder, write_swarm_key},
    unused_port, wait_for,
};

/// A fake sysfs tree in a temp dir.
struct FakeSys {
    dir: tempfile::TempDir,
}

impl FakeSys {
    fn new() -> FakeSys {
        FakeSys {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    /// Writes `text` at `path` under the root, creating directories.
    fn write(&self, path: &str, text: &str) {
        let path = self.root().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn remove(&self, path: &str) {
        std::fs::remove_file(self.root().join(path)).unwrap();
    }

    /// A small office's worth of sensors, each as its kernel driver prints it.
    fn office() -> FakeSys {
        let sys = FakeSys::new();
        // An SHT3x on hwmon: millidegrees and milli-percent, a label on the temperature.
        sys.write("class/hwmon/hwmon1/name", "sht3x\n");
        sys.write("class/hwmon/hwmon1/temp1_input", "23125\n");
        sys.write("class/hwmon/hwmon1/temp1_label", "ambient\n");
        sys.write("class/hwmon/hwmon1/temp1_max", "60000\n");
        sys.write("class/hwmon/hwmon1/humidity1_input", "45678\n");
        // The CPU: skipped by auto-detection.
        sys.write("class/hwmon/hwmon0/name", "coretemp\n");
        sys.write("class/hwmon/hwmon0/temp1_input", "61000\n");
        // A BME280 on IIO with processed values: milli °C, milli-percent, kPa.
        sys.write("bus/iio/devices/iio:device0/name", "bme280\n");
        sys.write("bus/iio/devices/iio:device0/in_temp_input", "22500\n");
        sys.write(
            "bus/iio/devices/iio:device0/in_humidityrelative_input",
            "41234\n",
        );
        sys.write(
            "bus/iio/devices/iio:device0/in_pressure_input",
            "100.312500000\n",
        );
        sys.write(
            "bus/iio/devices/iio:device0/in_temp_oversampling_ratio",
            "2\n",
        );
        // A raw-only device: (raw + offset) × scale, the temperature with its own offset and
        // scale, the humidity with a scale shared by its type.
        sys.write("bus/iio/devices/iio:device1/name", "hdc2080\n");
        sys.write("bus/iio/devices/iio:device1/in_temp_raw", "1000\n");
        sys.write("bus/iio/devices/iio:device1/in_temp_offset", "-500\n");
        sys.write("bus/iio/devices/iio:device1/in_temp_scale", "45.250000\n");
        sys.write(
            "bus/iio/devices/iio:device1/in_humidityrelative0_raw",
            "2000\n",
        );
        sys.write(
            "bus/iio/devices/iio:device1/in_humidityrelative_scale",
            "20.5\n",
        );
        // DS18B20s: a good one, a CRC failure, and the power-on reset value.
        sys.write(
            "bus/w1/devices/28-000000000001/w1_slave",
            "56 01 4b 46 7f ff 0a 10 d1 : crc=d1 YES\n56 01 4b 46 7f ff 0a 10 d1 t=21375\n",
        );
        sys.write(
            "bus/w1/devices/28-000000000002/w1_slave",
            "56 01 4b 46 7f ff 0a 10 ff : crc=d1 NO\n56 01 4b 46 7f ff 0a 10 ff t=21375\n",
        );
        sys.write(
            "bus/w1/devices/28-000000000003/w1_slave",
            "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n",
        );
        // The bus master is in the same directory and is not a probe.
        sys.write(
            "bus/w1/devices/w1_bus_master1/w1_master_slaves",
            "28-000000000001\n",
        );
        sys
    }
}

/// What the fake office's sensors should read: (sensor id, quantity, value).
const OFFICE_READINGS: &[(&str, &str, f64)] = &[
    ("sht3x/ambient", "temperature", 23.125),
    ("sht3x/humidity1", "humidity", 45.678),
    ("bme280/humidityrelative", "humidity", 41.234),
    ("bme280/pressure", "pressure", 1003.125),
    ("bme280/temp", "temperature", 22.5),
    ("hdc2080/humidityrelative0", "humidity", 41.0),
    ("hdc2080/temp", "temperature", 22.625),
    ("28-000000000001", "temperature", 21.375),
];

fn room(name: &str) -> Room {
    Room::new(name).unwrap()
}

#[tokio::test]
async fn auto_detection_reads_a_fake_sysfs_tree_and_drops_bad_probes() {
    let sys = FakeSys::office();
    let config = SensorsConfig {
        sysfs_root: sys.root(),
        auto_detect: true,
        sources: Vec::new(),
    };
    let (survey, detection) = sensors::survey(&config, &room("lab")).await;
    let detection = detection.expect("nothing configured: detected");
    assert_eq!(
        detection.skipped,
        vec!["hwmon0 (coretemp): measures the machine, not the room".to_owned()]
    );
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for line in &survey {
        assert_eq!(line.room.as_str(), "lab");
        match &line.readings {
            Ok(samples) => good.extend(
                samples
                    .iter()
                    .map(|s| (s.sensor.to_string(), s.quantity.name(), s.value)),
            ),
            Err(error) => bad.push((line.source.id.clone(), error.clone())),
        }
    }
    good.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected: Vec<(String, &str, f64)> = OFFICE_READINGS
        .iter()
        .map(|(id, quantity, value)| ((*id).to_owned(), *quantity, *value))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(good, expected);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert_eq!(bad[0].0, "28-000000000002");
    assert!(bad[0].1.contains("CRC check failed"), "{}", bad[0].1);
    assert_eq!(bad[1].0, "28-000000000003");
    assert!(bad[1].1.contains("power-on reset"), "{}", bad[1].1);
}

/// A subscriber that keeps every formatted log line, for counting warnings.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn count(&self, needle: &str) -> usize {
        self.text()
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs one source, with samples arriving on the returned receiver.
fn run_source(
    source: Source,
    root: PathBuf,
    shutdown: &CancellationToken,
) -> (mpsc::Receiver<Sample>, JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(sensors::SAMPLE_CAPACITY);
    let task = tokio::spawn(sensors::run(
        source,
        root,
        room("lab"),
        sender,
        shutdown.clone(),
    ));
    (receiver, task)
}

/// The next sample, or a panic naming `what` after the deadline.
async fn next_sample(samples: &mut mpsc::Receiver<Sample>, what: &str) -> Sample {
    match tokio::time::timeout(DEADLINE, samples.recv()).await {
        Ok(Some(sample)) => sample,
        Ok(None) => panic!("{what}: the source stopped"),
        Err(_) => panic!("{what}: no sample within {DEADLINE:?}"),
    }
}

fn sources(toml: &str) -> Vec<Source> {
    Config::from_toml(toml)
        .unwrap_or_else(|error| panic!("{error}"))
        .sensors
        .sources
}

// One thread, so the log subscriber set for this test sees every task's lines.
#[tokio::test(flavor = "current_thread")]
async fn a_vanished_hwmon_file_is_one_warning_and_the_source_recovers() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sys = FakeSys::office();
    let mut source = sources(
        "[[sensors.source]]\nkind = \"hwmon\"\ndevice = \"sht3x\"\nchannel = \"temp1\"\noffset = -0.125\n",
    )
    .remove(0);
    // Faster than config allows, so the test sees many failed reads quickly.
    source.interval = Duration::from_millis(10);
    let shutdown = CancellationToken::new();
    let (mut samples, task) = run_source(source, sys.root(), &shutdown);
    let first = next_sample(&mut samples, "the first reading").await;
    assert_eq!(first.sensor.as_str(), "sht3x/temp1");
    assert_eq!(first.value, 23.0, "23.125 °C with a -0.125 calibration");

    // The driver goes away: its file vanishes, then its whole directory.
    sys.remove("class/hwmon/hwmon1/temp1_input");
    eventually("the warning about sht3x", || async {
        logs.count("sensor not answering") == 1
    })
    .await;
    std::fs::remove_dir_all(sys.root().join("class/hwmon/hwmon1")).unwrap();
    // Samples queued before the removal are drained; none may carry a new value.
    while let Ok(sample) = samples.try_recv() {
        assert_eq!(sample.value, 23.0);
    }
    assert!(!task.is_finished(), "the source task ended");

    // The chip comes back under another number (a driver reload), with a new value.
    sys.write("class/hwmon/hwmon7/name", "sht3x\n");
    sys.write("class/hwmon/hwmon7/temp1_input", "24625\n");
    let mut value = first.value;
    while value == first.value {
        value = next_sample(&mut samples, "a reading after the chip came back")
            .await
            .value;
    }
    assert_eq!(value, 24.5);
    eventually("the recovery line", || async {
        logs.count("sensor answering again") == 1
    })
    .await;
    let text = logs.text();
    assert_eq!(
        logs.count("sensor not answering"),
        1,
        "one warning, not one per failed read:\n{text}"
    );
    let warning = text
        .lines()
        .find(|line| line.contains("sensor not answering"))
        .unwrap();
    assert!(
        warning.contains("sht3x/temp1 (hwmon)") && warning.contains("temp1_input"),
        "the warning names the source and the file: {warning}"
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn out_of_range_values_are_dropped_until_the_sensor_is_sane_again() {
    let sys = FakeSys::new();
    sys.write(
        "bus/w1/devices/28-00000000000a/w1_slave",
        "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n",
    );
    sys.write("bus/iio/devices/iio:device0/name", "si7020\n");
    // 150 % relative humidity: a broken sensor.
    sys.write(
        "bus/iio/devices/iio:device0/in_humidityrelative_input",
        "150000\n",
    );
    let shutdown = CancellationToken::new();
    let mut all = sources(
        "[[sensors.source]]\nkind = \"w1\"\ndevice = \"28-00000000000a\"\n\
         [[sensors.source]]\nkind = \"iio\"\ndevice = \"si7020\"\nchannel = \"humidityrelative\"\n",
    );
    for source in &mut all {
        source.interval = Duration::from_millis(10);
    }
    let (mut probe, probe_task) = run_source(all.remove(0), sys.root(), &shutdown);
    let (mut humidity, humidity_task) = run_source(all.remove(0), sys.root(), &shutdown);
    // Neither sends anything while its values are bad; both send once they are good.
    sys.write(
        "bus/w1/devices/28-00000000000a/w1_slave",
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n",
    );
    sys.write(
        "bus/iio/devices/iio:device0/in_humidityrelative_input",
        "55500\n",
    );
    assert_eq!(next_sample(&mut probe, "the probe").await.value, 23.125);
    assert_eq!(next_sample(&mut humidity, "the humidity").await.value, 55.5);
    shutdown.cancel();
    probe_task.await.unwrap();
    humidity_task.await.unwrap();
}

#[tokio::test]
async fn a_command_source_reads_json_from_a_real_program() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("co2.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"co2\": 612, \"unit\": \"ppm\"}'\n",
    )
    .unwrap();
    let source = sources(&format!(
        "[[sensors.source]]\nkind = \"command\"\nid = \"co2-meter\"\nquantity = \"co2\"\ncommand = [\"sh\", \"{}\"]\njson_pointer = \"/co2\"\nroom = \"kitchen\"\n",
        script.display()
    ))
    .remove(0);
    let shutdown = CancellationToken::new();
    let (mut samples, task) = run_source(source, dir.path().to_owned(), &shutdown);
    let sample = next_sample(&mut samples, "the command's reading").await;
    assert_eq!(
        (sample.sensor.as_str(), sample.room.as_str(), sample.value),
        ("co2-meter", "kitchen", 612.0)
    );
    shutdown.cancel();
    task.await.unwrap();
}

/// How many ports a broker tries before the test gives up.
const BROKER_PORT_ATTEMPTS: usize = 5;

/// Tells the test publishers' MQTT client ids apart.
static PUBLISHERS: AtomicU32 = AtomicU32::new(0);

/// A Mosquitto broker on a loopback port, with its own config file in a temp dir.
struct Broker {
    child: Child,
    port: u16,
    config: PathBuf,
}

fn mosquitto_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("mosquitto"));
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the MQTT tests need the Mosquitto broker, and `mosquitto` is not in PATH or /usr/sbin: \
         install the Debian package (apt-get install -y mosquitto); scripts/test does"
    );
}

impl Broker {
    /// Mosquitto cannot report a port it picked itself, so it gets one that was free a
    /// moment ago; if another process took it meanwhile, Mosquitto exits and gets another.
    fn start(dir: &Path) -> Broker {
        let config = dir.join("mosquitto.conf");
        for _ in 0..BROKER_PORT_ATTEMPTS {
            let port = unused_port();
            std::fs::write(
                &config,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
                ),
            )
            .unwrap();
            let mut broker = Broker {
                child: Broker::spawn(&config),
                port,
                config: config.clone(),
            };
            if broker.wait_listening() {
                return broker;
            }
        }
        panic!("mosquitto exited at start on {BROKER_PORT_ATTEMPTS} ports in a row");
    }

    fn spawn(config: &Path) -> Child {
        Command::new(mosquitto_binary())
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts")
    }

    /// Waits until the broker accepts connections; false if it exited first.
    fn wait_listening(&mut self) -> bool {
        let port = self.port;
        wait_for(&format!("mosquitto listening on {port}"), || {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(false);
            }
            TcpStream::connect(("127.0.0.1", port)).map(|_| true)
        })
    }

    fn stop(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Stops the broker and starts it again on the same port, forgetting everything.
    fn restart(&mut self) {
        self.stop();
        self.child = Broker::spawn(&self.config);
        assert!(
            self.wait_listening(),
            "mosquitto exited on restart: port {} was taken",
            self.port
        );
    }

    /// Publishes retained messages, so a subscriber gets them whenever it subscribes.
    async fn publish_retained(&self, messages: &[(&str, &str)]) {
        let mut options = MqttOptions::new(
            format!(
                "test-publisher-{}",
                PUBLISHERS.fetch_add(1, Ordering::Relaxed)
            ),
            "127.0.0.1",
            self.port,
        );
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(options, 16);
        for (topic, payload) in messages {
            client
                .publish(*topic, QoS::AtLeastOnce, true, payload.as_bytes().to_vec())
                .await
                .unwrap();
        }
        // Drives the connection until the broker has acknowledged every message.
        let mut acknowledged = 0;
        let start = Instant::now();
        while acknowledged < messages.len() {
            assert!(start.elapsed() < DEADLINE, "the broker did not acknowledge");
            match tokio::time::timeout(DEADLINE, events.poll()).await {
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) => acknowledged += 1,
                Ok(Ok(_)) => {}
                Ok(Err(error)) => panic!("publishing failed: {error}"),
                Err(_) => panic!("publishing timed out"),
            }
        }
        client.disconnect().await.unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects samples until one per sensor in `expected` has the expected value.
async fn expect_samples(samples: &mut mpsc::Receiver<Sample>, expected: &[(&str, &str, f64)]) {
    let mut missing: Vec<(String, String, f64)> = expected
        .iter()
        .map(|(sensor, room, value)| ((*sensor).to_owned(), (*room).to_owned(), *value))
        .collect();
    while !missing.is_empty() {
        let sample = next_sample(samples, &format!("samples still missing: {missing:?}")).await;
        missing.retain(|(sensor, room, value)| {
            !(sample.sensor.as_str() == sensor
                && sample.room.as_str() == room
                && (sample.value - value).abs() < 1e-9)
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_readings_arrive_from_a_real_broker_and_survive_its_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path());
    let config = format!(
        r#"
        [[sensors.source]]
        kind = "zigbee2mqtt"
        broker = "127.0.0.1:{port}"
        device = "desk"
        room = "open space"

        [[sensors.source]]
        kind = "tasmota"
        broker = "mqtt://127.0.0.1:{port}"
        device = "tasmota_4F2A1C"
        sensor = "BME280"
        quantity = "temperature"
        offset = -0.5
        room = "kitchen"

        [[sensors.source]]
        kind = "mqtt"
        broker = "127.0.0.1:{port}"
        topic = "office/meeting/co2"
        json_pointer = "/co2/ppm"
        id = "co2-meter"
        quantity = "co2"
        room = "meeting room"
        "#,
        port = broker.port
    );
    let shutdown = CancellationToken::new();
    let (sender, mut samples) = mpsc::channel(sensors::SAMPLE_CAPACITY);
    let tasks: Vec<JoinHandle<()>> = sources(&config)
        .into_iter()
        .map(|source| {
            tokio::spawn(sensors::run(
                source,
                dir.path().to_owned(),
                room("office"),
                sender.clone(),
                shutdown.clone(),
            ))
        })
        .collect();

    broker
        .publish_retained(&[
            (
                "zigbee2mqtt/desk",
                r#"{"battery":100,"humidity":48.27,"linkquality":156,"pressure":1012.4,"temperature":21.84,"voltage":3005}"#,
            ),
            (
                "tele/tasmota_4F2A1C/SENSOR",
                r#"{"Time":"2026-03-01T10:00:00","BME280":{"Temperature":22.6,"Humidity":41.5,"DewPoint":8.4,"Pressure":1009.8},"DS18B20":{"Id":"01144A0CB6AA","Temperature":19.5},"PressureUnit":"hPa","TempUnit":"C"}"#,
            ),
            ("office/meeting/co2", r#"{"co2": {"ppm": 612}}"#),
        ])
        .await;
    expect_samples(
        &mut samples,
        &[
            ("desk/temperature", "open space", 21.84),
            ("desk/humidity", "open space", 48.27),
            ("desk/pressure", "open space", 1012.4),
            ("tasmota_4F2A1C", "kitchen", 22.1),
            ("co2-meter", "meeting room", 612.0),
        ],
    )
    .await;

    // The broker restarts and forgets everything; the sources reconnect and subscribe again.
    broker.restart();
    broker
        .publish_retained(&[
            (
                "zigbee2mqtt/desk",
                r#"{"temperature":23.5,"humidity":50.0}"#,
            ),
            (
                "tele/tasmota_4F2A1C/SENSOR",
                r#"{"BME280":{"Temperature":71.6,"Humidity":40.0},"TempUnit":"F"}"#,
            ),
            ("office/meeting/co2", r#"{"co2": {"ppm": 700}}"#),
        ])
        .await;
    expect_samples(
        &mut samples,
        &[
            ("desk/temperature", "open space", 23.5),
            ("desk/humidity", "open space", 50.0),
            ("tasmota_4F2A1C", "kitchen", 21.5),
            ("co2-meter", "meeting room", 700.0),
        ],
    )
    .await;

    shutdown.cancel();
    for task in tasks {
        task.await.unwrap();
    }
}

/// A real node on its own config, sharing the swarm key of `dir`.
fn configured_node(dir: &Path, name: &str, config: &str) -> NodeBuilder {
    let key = dir.join("swarm.key");
    write_swarm_key(&key, 0x5e);
    Node::builder(dir.join(name)).config(config).swarm_key(&key)
}

/// (room, sensor, quantity, value, unit) of every reading in a state.
fn readings(state: &Value) -> Vec<(String, String, String, f64, String)> {
    let mut all = Vec::new();
    for room in state["rooms"].as_array().into_iter().flatten() {
        for reading in room["readings"].as_array().into_iter().flatten() {
            all.push((
                room["name"].as_str().unwrap_or("").to_owned(),
                reading["sensor"].as_str().unwrap_or("").to_owned(),
                reading["quantity"].as_str().unwrap_or("").to_owned(),
                reading["value"].as_f64().unwrap_or(f64::NAN),
                reading["unit"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    all.sort_by(|a, b| a.1.cmp(&b.1));
    all
}

#[test]
fn a_node_on_a_fake_sysfs_tree_shows_its_sensors_on_another_node() {
    let sys = FakeSys::office();
    let dir = tempfile::tempdir().unwrap();
    // No sources listed: the node auto-detects the tree, in its own room, and one configured
    // source would turn detection off, so the room override is tested by the unit tests.
    let sensing = configured_node(
        dir.path(),
        "sensing",
        &format!(
            "[node]\nroom = \"lab\"\n[sensors]\nsysfs_root = \"{}\"\n",
            sys.root().display()
        ),
    )
    .start();
    let empty_sys = dir.path().join("empty-sys");
    std::fs::create_dir_all(&empty_sys).unwrap();
    let other = configured_node(
        dir.path(),
        "other",
        &format!(
            "[node]\nroom = \"hall\"\n[sensors]\nsysfs_root = \"{}\"\n",
            empty_sys.display()
        ),
    )
    .peer(&sensing.dial_address())
    .start();
    let unit = |quantity: &str| match quantity {
        "temperature" => "°C",
        "humidity" => "%",
        _ => "hPa",
    };
    let mut expected: Vec<(String, String, String, f64, String)> = OFFICE_READINGS
        .iter()
        .map(|(sensor, quantity, value)| {
            (
                "lab".to_owned(),
                (*sensor).to_owned(),
                (*quantity).to_owned(),
                *value,
                unit(quantity).to_owned(),
            )
        })
        .collect();
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    wait_for("the other node shows the lab's sensors", || {
        let seen = readings(&other.state());
        (seen == expected)
            .then_some(())
            .ok_or(format!("sees {seen:?}"))
    });

    // A file vanishes under the running node: it keeps answering, and the reading stays
    // with its measured-at time, ageing.
    sys.remove("class/hwmon/hwmon1/temp1_input");
    sys.write("bus/iio/devices/iio:device0/in_temp_input", "24000\n");
    wait_for("the other node sees the BME280's new temperature", || {
        let seen = readings(&other.state());
        seen.iter()
            .any(|r| r.1 == "bme280/temp" && r.3 == 24.0)
            .then_some(())
            .ok_or(format!("sees {seen:?}"))
    });
    let state = sensing.state();
    let ambient = state["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|room| room["readings"].as_array().unwrap())
        .find(|reading| reading["sensor"] == "sht3x/ambient")
        .expect("the vanished sensor's last reading stays");
    assert_eq!(ambient["value"], 23.125);
    assert!(ambient["measured_at_ms"].as_u64().unwrap() > 0);
}
