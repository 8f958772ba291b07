//! The HotSwap domain model.
//!
//! Every type, field, enum, default, validation rule and method of the seed
//! (`shared/seed/domain-models.md`) lives here with the same meaning. This
//! crate does no I/O: storage, HTTP and execution build on it.
//!
//! The seed's types are also the wire contract (`shared/api.md` fixes JSON as
//! the seed's field names in camelCase), so they carry serde derives; see
//! ARCHITECTURE.md for why one definition serves both.

pub mod alias;
pub mod deployment;
pub mod duration;
pub mod function;
pub mod invocation;
pub mod layer;
pub mod names;
pub mod network;
pub mod package;
pub mod queue;
pub mod runner;
pub mod runtime;
pub mod time;
pub mod trigger;
pub mod validation;
pub mod value;
pub mod version;

pub use alias::FunctionAlias;
pub use deployment::{
    Deployment, DeploymentConfig, DeploymentEvent, DeploymentMetrics, DeploymentStatus,
    DeploymentStrategy,
};
pub use function::Function;
pub use invocation::{AsyncInvocation, AsyncStatus};
pub use layer::{LayerRef, LayerVersion};
pub use names::{DeadLetterTarget, Qualifier, LATEST};
pub use network::{
    EgressRule, EgressRuleInput, Ipv4Cidr, NetworkSpec, PortRange, Protocol, SecurityGroup, Subnet,
};
pub use queue::{QueueMessage, QueueSummary, Receipt};
pub use runner::{RunnerHealth, RunnerMetrics, RunnerNode, RunnerResources};
pub use runtime::Runtime;
pub use trigger::{
    DeliveryTarget, HttpAuthType, QueueSettings, StartingPosition, StreamSettings, Trigger,
    TriggerConfig, TriggerSource, TriggerType,
};
pub use validation::ValidationErrors;
pub use value::{InvocationResult, ScalingConfig, VpcConfig};
pub use version::{FunctionVersion, VersionStatus};
