//! The Kafka edge: the idempotent producer, the topics, and sending a batch until the broker
//! has acknowledged every message of it.

use std::time::Duration;

use anyhow::Context;
use futures::future::{try_join_all, BoxFuture};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use super::message::Message;

/// How long a message may wait for the broker's acknowledgement before its batch fails.
pub const MESSAGE_TIMEOUT_MS: u64 = 30_000;

/// Where and how to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `host:port[,host:port...]` (`KAFKA_BROKERS`).
    pub brokers: String,
    /// The topic of user changes (`KAFKA_USER_TOPIC`, default `user-changes`).
    pub user_topic: String,
    /// The topic of role and application changes (`KAFKA_ROLE_APPLICATION_TOPIC`, default
    /// `role-application-changes`).
    pub role_application_topic: String,
    /// The topic of follows and blocks between users (`KAFKA_SOCIAL_TOPIC`, default
    /// `social-changes`), keyed by the pair of users (`<lower id>-<higher id>`).
    pub social_topic: String,
    /// Partitions of a topic the publisher creates (`KAFKA_PARTITIONS`, default 6).
    pub partitions: i32,
    /// Replication factor of a topic the publisher creates (`KAFKA_REPLICATION_FACTOR`,
    /// default 1).
    pub replication_factor: i32,
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            user_topic: "user-changes".to_owned(),
            role_application_topic: "role-application-changes".to_owned(),
            social_topic: "social-changes".to_owned(),
            partitions: 6,
            replication_factor: 1,
        }
    }

    /// The topics the publisher writes.
    pub fn topics(&self) -> [&str; 3] {
        [
            &self.user_topic,
            &self.role_application_topic,
            &self.social_topic,
        ]
    }
}

/// The idempotent producer (`enable.idempotence=true`, `acks=all`: per-partition order and no
/// duplicate from the producer's own retries). While the broker is away, messages wait and are
/// retried for [`MESSAGE_TIMEOUT_MS`]; then the batch fails, and the publisher starts over
/// with a new producer from its checkpoint (a producer whose broker came back as a new
/// cluster may otherwise never hear back).
pub fn producer(settings: &KafkaSettings) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", "userledger-publisher")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS.to_string())
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("reconnect.backoff.max.ms", "1000")
        .create()
        .context("creating the Kafka producer")
}

/// Creates the topics that do not exist yet (a broker may not create them on first use).
pub async fn ensure_topics(settings: &KafkaSettings) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let topics: Vec<NewTopic> = settings
        .topics()
        .iter()
        .map(|topic| {
            NewTopic::new(
                topic,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .context("creating the Kafka topics")?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, "created the Kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating the Kafka topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// The broker's acknowledgements of a batch: resolves once every message of it is
/// acknowledged, or with the first failure (then some may not have arrived: send it again).
pub type Acknowledgements = BoxFuture<'static, anyhow::Result<()>>;

/// Sends `messages` (each with its topic), in order, and waits until the broker acknowledged
/// them all.
pub async fn deliver(
    producer: &FutureProducer,
    messages: &[(&str, Message)],
) -> anyhow::Result<()> {
    send(producer, messages).await?.await
}

/// Hands `messages` (each with its topic) to the producer, in order, and returns their
/// acknowledgements without waiting for them, so that the next batch can follow at once.
pub async fn send(
    producer: &FutureProducer,
    messages: &[(&str, Message)],
) -> anyhow::Result<Acknowledgements> {
    let mut acknowledgements = Vec::with_capacity(messages.len());
    for (topic, message) in messages {
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
        for (key, value) in &message.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_str()),
            });
        }
        let mut record = FutureRecord::<String, Vec<u8>>::to(topic)
            .key(&message.key)
            .headers(headers)
            .timestamp(message.timestamp_ms);
        if let Some(payload) = &message.payload {
            record = record.payload(payload);
        }
        // Enqueued in log order; a full local queue drains as the broker acknowledges.
        loop {
            match producer.send_result(record) {
                Ok(acknowledgement) => {
                    acknowledgements.push(acknowledgement);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((error, _)) => return Err(error).context("enqueueing a Kafka message"),
            }
        }
    }
    Ok(Box::pin(async move {
        try_join_all(acknowledgements.into_iter().map(|acknowledgement| async {
            match acknowledgement.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => {
                    Err(anyhow::Error::new(error).context("Kafka refused a message"))
                }
                Err(_) => Err(anyhow::anyhow!("the Kafka producer dropped a message")),
            }
        }))
        .await
        .map(|_| ())
    }))
}
