//! The projector runtime and the projections of userledger (read models, Kafka publisher), fed
//! by `events::store::EventStore::subscribe_all`. Not written yet: see the open issues.
