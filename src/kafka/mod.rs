//! Kafka: the agent's durable producer and the transfer's consumer.

pub mod consumer;
pub mod producer;
