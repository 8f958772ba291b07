//! The background-task driver.
