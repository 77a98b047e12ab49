//! The Kafka broker of `scripts/services`, as tests reach it: its address, a topic of their
//! own, and the first message of a topic.

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use uuid::Uuid;

use kairos::config::Backend;

use super::{WAIT_LIMIT, settings_for};

/// The broker of `scripts/services`, as the distributed test configuration names it.
pub fn broker() -> String {
    settings_for(Backend::Distributed)
        .kafka
        .bootstrap_servers
        .expect("a broker")
}

/// The first message of `topic`, read from its start (within [`WAIT_LIMIT`]).
pub async fn first_message(servers: &str, topic: &str) -> OwnedMessage {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set(
            "group.id",
            format!("test-reader-{}", Uuid::new_v4().simple()),
        )
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("a consumer");
    consumer.subscribe(&[topic]).expect("subscribed");
    tokio::time::timeout(WAIT_LIMIT, consumer.recv())
        .await
        .expect("a message within the wait")
        .expect("no consumer error")
        .detach()
}

/// Creates `topic`, of one partition, on the brokers at `servers`.
pub async fn create_topic(servers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .expect("an admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("the broker answers");
    for result in created {
        result.expect("the topic is created");
    }
}
