//! Event shapes: the EventBridge scheduled event and samples.
