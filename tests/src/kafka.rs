//! A throwaway Kafka-protocol broker for tests and benchmarks: `tansu`, on a free port of
//! 127.0.0.1, on in-memory storage (so a restarted broker starts empty, like a new cluster).
//! And a consumer that reads every partition of a topic.

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use crate::postgres::free_port;

/// A running broker.
pub struct Broker {
    /// `127.0.0.1:PORT`
    address: String,
    port: u16,
    storage: String,
    /// `None` for a broker this process did not start (`KAFKA_BROKERS`).
    process: Option<Child>,
}

impl Broker {
    /// The broker of `KAFKA_BROKERS` when it is set, else one throwaway broker per process.
    pub fn shared() -> Result<&'static str> {
        static SHARED: OnceLock<Result<String, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| match std::env::var("KAFKA_BROKERS") {
                Ok(brokers) => Ok(brokers),
                Err(_) => Broker::start_in_memory()
                    .map(|broker| {
                        let address = broker.address.clone();
                        // Runs until the process ends (its watchdog stops it then).
                        std::mem::forget(broker);
                        address
                    })
                    .map_err(|e| format!("{e:#}")),
            })
            .as_deref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// A new broker of this process on in-memory storage.
    pub fn start_in_memory() -> Result<Self> {
        Self::start("memory://tansu/".to_owned())
    }

    fn start(storage: String) -> Result<Self> {
        let mut broker = Self {
            address: String::new(),
            port: free_port()?,
            storage,
            process: None,
        };
        broker.address = format!("127.0.0.1:{}", broker.port);
        broker.restart()?;
        Ok(broker)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Stops the broker's process (SIGSTOP) until [`Broker::resume`]: it answers nothing, its
    /// clients' requests time out, and nothing it holds is lost.
    pub fn suspend(&self) -> Result<()> {
        self.signal("STOP")
    }

    /// Lets a suspended broker run again (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let process = self
            .process
            .as_ref()
            .context("a broker this process started")?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(process.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {}: {status}", process.id());
        }
        Ok(())
    }

    /// Kills the broker (SIGKILL): its clients see connections refused until it is back.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts the broker (again) on the same port, and waits until it listens. A restarted
    /// broker has lost its topics and messages (memory storage).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let url = format!("tcp://{}", self.address);
        let process = Command::new(tansu_binary()?)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &self.storage])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(crate::process_log())
            .spawn()
            .context("starting tansu (cargo install tansu --locked --features dynostore)")?;
        watch(process.id())?;
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.address).is_err() {
            if let Some(process) = self.process.as_mut() {
                if let Some(status) = process.try_wait()? {
                    bail!("tansu exited at start: {status}");
                }
            }
            if Instant::now() > deadline {
                bail!("tansu does not listen on {} after 20 s", self.address);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `TANSU` when set, else `tansu` from `PATH` or cargo's bin directory.
fn tansu_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU") {
        return Ok(PathBuf::from(path));
    }
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|dir| dir.join("tansu"))
        .find(|candidate| candidate.is_file())
        .context("tansu is not installed: cargo install tansu --locked --features dynostore")
}

/// Kills the broker when this process ends, even by SIGKILL.
fn watch(broker: u32) -> Result<()> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null && kill -0 {broker} 2>/dev/null; do sleep 0.5; done; \
         kill -9 {broker} 2>/dev/null",
        pid = std::process::id()
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the broker's watchdog")?;
    Ok(())
}

/// A message as a consumer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub headers: HashMap<String, String>,
    pub payload: Value,
    /// The payload as it came, to check what it does not contain.
    pub text: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Reads `topic` from its beginning, every partition.
pub struct TopicReader {
    consumer: BaseConsumer,
    pub received: Vec<Received>,
}

impl TopicReader {
    /// Reads from the beginning of every partition.
    pub fn new(brokers: &str, topic: &str) -> Result<Self> {
        Self::from_offset(brokers, topic, Offset::Beginning)
    }

    /// Reads only what arrives from now on.
    pub fn new_at_end(brokers: &str, topic: &str) -> Result<Self> {
        Self::from_offset(brokers, topic, Offset::End)
    }

    fn from_offset(brokers: &str, topic: &str, offset: Offset) -> Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set(
                "group.id",
                format!("userledger-tests-{}", uuid::Uuid::now_v7()),
            )
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .context("creating a Kafka consumer")?;
        // The topic may not exist yet (the publisher creates it when it starts).
        let deadline = Instant::now() + Duration::from_secs(30);
        let partitions = loop {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .context("reading the topic's metadata")?;
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len());
            if partitions > 0 {
                break partitions;
            }
            if Instant::now() > deadline {
                bail!("topic {topic} does not exist after 30 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            assignment.add_partition_offset(topic, partition, offset)?;
        }
        consumer.assign(&assignment)?;
        Ok(Self {
            consumer,
            received: Vec::new(),
        })
    }

    /// Reads until `enough` holds for what was received, or fails after `timeout`.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        enough: impl Fn(&[Received]) -> bool,
    ) -> Result<&[Received]> {
        let deadline = Instant::now() + timeout;
        while !enough(&self.received) {
            if Instant::now() > deadline {
                bail!(
                    "after {timeout:?}, {} messages received and still not enough",
                    self.received.len()
                );
            }
            self.poll(Duration::from_millis(100))?;
        }
        Ok(&self.received)
    }

    /// Reads for `duration` whatever comes.
    pub fn read_for(&mut self, duration: Duration) -> Result<&[Received]> {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.poll(Duration::from_millis(100))?;
        }
        Ok(&self.received)
    }

    /// Waits up to `timeout` for one message; whether one came.
    pub fn poll(&mut self, timeout: Duration) -> Result<bool> {
        let Some(message) = self.consumer.poll(timeout) else {
            return Ok(false);
        };
        let message = message.context("consuming")?;
        let mut headers = HashMap::new();
        if let Some(found) = message.headers() {
            for header in found.iter() {
                let value = header
                    .value
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                headers.insert(header.key.to_owned(), value.into_owned());
            }
        }
        let text = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        self.received.push(Received {
            partition: message.partition(),
            offset: message.offset(),
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            headers,
            payload: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        });
        Ok(true)
    }
}
