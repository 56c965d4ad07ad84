//! The vocabulary both sides speak: resource identities and specs, the desired state of one
//! node. Pure: no IO, no async, no logging. Every type here that crosses a process boundary
//! carries a format version.

pub mod desired;
pub mod digest;
pub mod resource;

pub use desired::{DESIRED_FORMAT, DesiredResource, DesiredState, Origin};
pub use resource::{
    DirectorySpec, Ensure, FileSpec, GroupSpec, HealthCheck, NotifyAction, PackageEnsure,
    PackageSpec, Probe, ResourceId, ResourceKind, RestartPolicy, ServiceSpec, ServiceState, Spec,
    SymlinkSpec, SysctlSpec, UnitFile, UserSpec,
};
pub mod observed;
pub mod outcome;
pub mod parallel;
pub mod plan;
pub mod wire;

pub use observed::{OBSERVED_FORMAT, ObservedState};
pub use outcome::{APPLY_FORMAT, ApplyReport, ApplyStatus, Outcome, ResourceReport, Totals};
pub use plan::{
    Action, Cause, Change, NodePlan, NodeStatus, Positions, PropertyChange, plan, plan_with,
};
