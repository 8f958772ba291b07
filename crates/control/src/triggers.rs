//! Triggers: event sources bound to a function's version or alias.

use hotswap_domain::{
    DeliveryTarget, Qualifier, Trigger, TriggerConfig, TriggerSource, TriggerType,
};

use crate::{ControlError, ControlPlane, FunctionRef, Principal, Result};

/// A trigger to create.
#[derive(Debug, Clone)]
pub struct NewTrigger {
    pub function_name: String,
    /// The function's owner, when an admin binds another owner's function
    /// (`ownerId`); the caller's own namespace otherwise.
    pub owner_id: Option<String>,
    pub target_version: Option<String>,
    pub trigger_type: TriggerType,
    pub is_enabled: Option<bool>,
    pub config: TriggerConfig,
}

/// The server flag that configures a broker source.
pub fn source_flag(source: TriggerSource) -> Option<&'static str> {
    match source {
        TriggerSource::Embedded => None,
        TriggerSource::Rabbitmq => Some("--rabbitmq-url"),
        TriggerSource::Nats => Some("--nats-url"),
        TriggerSource::Redis => Some("--redis-url"),
        TriggerSource::Kafka => Some("--kafka-brokers"),
    }
}

/// Why a `what` ("queue" or "stream") trigger on `source` is not served
/// here: the flag to start the server with, or that no backend serves it.
pub fn unserved_source(source: TriggerSource, what: &str) -> String {
    match source_flag(source) {
        Some(flag)
            if (what == "queue" && source.serves_queues())
                || (what == "stream" && source.serves_streams()) =>
        {
            let build = if source == TriggerSource::Kafka {
                " (a server built with the `kafka` feature)"
            } else {
                ""
            };
            format!(
                "Source '{source}' is not configured on this server: start it with {flag}{build}"
            )
        }
        _ => format!("Source '{source}' does not serve {what} triggers"),
    }
}

fn normalise_path(p: &str) -> String {
    hotswap_domain::trigger::http_route_shape(p)
}

fn methods_overlap(a: &Option<Vec<String>>, b: &Option<Vec<String>>) -> bool {
    let any = |m: &Option<Vec<String>>| {
        m.as_ref()
            .is_none_or(|v| v.iter().any(|x| x == "ANY" || x == "*"))
    };
    if any(a) || any(b) {
        return true;
    }
    let (a, b) = (
        a.as_deref().unwrap_or_default(),
        b.as_deref().unwrap_or_default(),
    );
    a.iter()
        .any(|x| b.iter().any(|y| x.eq_ignore_ascii_case(y)))
}

/// A queue message must stay invisible while the function may still be
/// processing it (api.md: `visibilityTimeout` ≥ the function's timeout).
/// Without one, the consumer uses the larger of the default and the
/// function's timeout ([`hotswap_domain::QueueSettings::visibility_timeout_for`]).
fn check_visibility_timeout(trigger: &Trigger, f: &hotswap_domain::Function) -> Result<()> {
    match trigger.config.visibility_timeout {
        Some(v) if trigger.trigger_type == TriggerType::Queue && v < f.timeout => {
            Err(ControlError::validation(format!(
                "VisibilityTimeout ({v} s) must be at least the timeout of function '{}' ({} s)",
                f.name, f.timeout
            )))
        }
        _ => Ok(()),
    }
}

impl ControlPlane {
    /// `fn:NAME` dead-letter and on-failure targets name an existing
    /// function of the same owner (their syntax is `Trigger::validate`'s).
    async fn check_delivery_targets(&self, trigger: &Trigger, owner: &str) -> Result<()> {
        for (field, target) in [
            ("DeadLetterTarget", &trigger.config.dead_letter_target),
            ("OnFailure", &trigger.config.on_failure),
        ] {
            let Some(Ok(DeliveryTarget::Function { name, .. })) =
                target.as_deref().map(str::parse::<DeliveryTarget>)
            else {
                continue;
            };
            if self.store.get_function(owner, &name).await?.is_none() {
                return Err(ControlError::validation(format!(
                    "{field} function '{name}' does not exist"
                )));
            }
        }
        Ok(())
    }

    /// A Queue or Stream trigger names a source this server consumes:
    /// valid but unserved, it would be stored as an enabled trigger that
    /// never fires, so it is refused, naming what is missing.
    fn check_source(&self, trigger: &Trigger) -> Result<()> {
        let served = self.served_sources();
        let (source, served, what) = match trigger.trigger_type {
            TriggerType::Queue => (
                trigger
                    .config
                    .source
                    .unwrap_or(TriggerSource::DEFAULT_QUEUE),
                served.queues,
                "queue",
            ),
            TriggerType::Stream => match trigger.config.source {
                Some(s) => (s, served.streams, "stream"),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        if served.contains(&source) {
            return Ok(());
        }
        Err(ControlError::validation(unserved_source(source, what)))
    }

    /// Checks that the trigger's target exists now.
    async fn check_target(&self, f: &hotswap_domain::Function, target: &str) -> Result<()> {
        let missing = |what: String| {
            ControlError::validation(format!(
                "TargetVersion {what} of function '{}' does not exist",
                f.name
            ))
        };
        let id = f.function_id.as_str();
        match target.parse::<Qualifier>() {
            Ok(Qualifier::Latest) | Err(_) => Ok(()),
            Ok(Qualifier::Version(n)) => match self.store.get_version(id, n).await? {
                Some(_) => Ok(()),
                None => Err(missing(format!("{n}"))),
            },
            Ok(Qualifier::Alias(a)) => match self.store.get_alias(id, &a).await? {
                Some(_) => Ok(()),
                None => Err(missing(format!("alias '{a}'"))),
            },
        }
    }

    /// An HTTP path is one owner's: it may not overlap any path of another
    /// owner (some URL would reach both, and the more specific would take
    /// the other's traffic), and within an owner one path shape serves a
    /// method once. Another owner's trigger is never named.
    async fn check_http_path(&self, trigger: &Trigger, owner: &str) -> Result<()> {
        let path = trigger.config.http_path.as_deref().unwrap_or("/");
        let shape = normalise_path(path);
        let mut owners: std::collections::HashMap<String, Option<String>> =
            std::collections::HashMap::new();
        for t in self.store.list_triggers(None).await? {
            let Some(other_path) = t.config.http_path.as_deref() else {
                continue;
            };
            if t.trigger_type != TriggerType::Http
                || !hotswap_domain::trigger::http_routes_overlap(path, other_path)
            {
                continue;
            }
            if !owners.contains_key(&t.function_id) {
                let found = self.store.get_function_by_id(&t.function_id).await?;
                owners.insert(t.function_id.clone(), found.map(|f| f.owner_id));
            }
            let other_owner = owners[&t.function_id].as_deref();
            if other_owner != Some(owner) {
                return Err(ControlError::Conflict(format!(
                    "HTTP path '{path}' overlaps a path served for another owner"
                )));
            }
            if normalise_path(other_path) == shape
                && methods_overlap(&t.config.http_methods, &trigger.config.http_methods)
            {
                return Err(ControlError::Conflict(format!(
                    "HTTP path '{shape}' is already served by trigger {} for the same methods",
                    t.trigger_id
                )));
            }
        }
        Ok(())
    }

    pub async fn create_trigger(&self, caller: &Principal, new: NewTrigger) -> Result<Trigger> {
        let mut trigger = Trigger::new(new.function_name, new.trigger_type, new.config);
        if let Some(t) = new.target_version {
            trigger.target_version = t;
        }
        if let Some(e) = new.is_enabled {
            trigger.is_enabled = e;
        }
        if trigger.is_enabled {
            trigger.enabled_at = Some(trigger.created_at);
        }
        if let Some(methods) = trigger.config.http_methods.as_mut() {
            methods.iter_mut().for_each(|m| *m = m.to_ascii_uppercase());
        }
        trigger.validate()?;
        let function = FunctionRef {
            owner: new.owner_id,
            name: trigger.function_name.clone(),
        };
        let f = self.owned_function(caller, &function, true).await?;
        trigger.function_id = f.function_id.clone();
        self.check_target(&f, &trigger.target_version).await?;
        if trigger.trigger_type == TriggerType::Http {
            self.check_http_path(&trigger, &f.owner_id).await?;
        }
        check_visibility_timeout(&trigger, &f)?;
        self.check_delivery_targets(&trigger, &f.owner_id).await?;
        self.check_source(&trigger)?;
        self.store.create_trigger(&trigger).await?;
        self.triggers_changed();
        Ok(trigger)
    }

    /// A trigger is visible to whoever may see its function.
    /// A trigger the caller may change: 404 when it does not exist or its
    /// function is invisible, 403 when the function is someone else's.
    async fn trigger_for_write(&self, caller: &Principal, id: &str) -> Result<Trigger> {
        let t = self
            .store
            .get_trigger(id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("trigger '{id}' not found")))?;
        self.trigger_function(caller, &t, true).await?;
        Ok(t)
    }

    /// The function of a trigger, if the caller may read (or, `write`,
    /// change) it: 404 for another tenant's on reads, 403 on writes.
    async fn trigger_function(
        &self,
        caller: &Principal,
        t: &Trigger,
        write: bool,
    ) -> Result<hotswap_domain::Function> {
        let not_found =
            || ControlError::NotFound(format!("function '{}' not found", t.function_name));
        let f = self
            .store
            .get_function_by_id(&t.function_id)
            .await?
            .ok_or_else(not_found)?;
        if caller.owns(&f.owner_id) {
            Ok(f)
        } else if write {
            Err(ControlError::Forbidden(format!(
                "function '{}' belongs to another owner",
                t.function_name
            )))
        } else {
            Err(not_found())
        }
    }

    pub async fn get_trigger(&self, caller: &Principal, id: &str) -> Result<Trigger> {
        let not_found = || ControlError::NotFound(format!("trigger '{id}' not found"));
        let t = self.store.get_trigger(id).await?.ok_or_else(not_found)?;
        self.trigger_function(caller, &t, false)
            .await
            .map_err(|_| not_found())?;
        Ok(t)
    }

    pub async fn list_triggers(
        &self,
        caller: &Principal,
        function: Option<&FunctionRef>,
    ) -> Result<Vec<Trigger>> {
        if let Some(f) = function {
            let f = self.owned_function(caller, f, false).await?;
            return Ok(self.store.list_triggers(Some(&f.function_id)).await?);
        }
        let all = self.store.list_triggers(None).await?;
        if caller.is_admin {
            return Ok(all);
        }
        let mut visible = Vec::with_capacity(all.len());
        for t in all {
            if self.trigger_function(caller, &t, false).await.is_ok() {
                visible.push(t);
            }
        }
        Ok(visible)
    }

    pub async fn set_trigger_enabled(
        &self,
        caller: &Principal,
        id: &str,
        enabled: bool,
    ) -> Result<Trigger> {
        let mut t = self.trigger_for_write(caller, id).await?;
        if enabled && !t.is_enabled {
            t.enabled_at = Some(hotswap_domain::time::now());
        }
        t.is_enabled = enabled;
        self.store.update_trigger(&t).await?;
        self.triggers_changed();
        Ok(t)
    }

    pub async fn delete_trigger(&self, caller: &Principal, id: &str) -> Result<()> {
        self.trigger_for_write(caller, id).await?;
        let deleted = self.store.delete_trigger(id).await?;
        self.triggers_changed();
        if !deleted {
            return Err(ControlError::NotFound(format!("trigger '{id}' not found")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_timeout_covers_the_function_timeout() {
        let mut f = hotswap_domain::Function::new(
            "worker",
            hotswap_domain::Runtime::Python39,
            "main.handler",
            "tenant",
        );
        f.timeout = 60;
        let queue = |v: Option<u32>| {
            Trigger::new(
                "worker",
                TriggerType::Queue,
                TriggerConfig {
                    queue_name: Some("jobs".into()),
                    visibility_timeout: v,
                    ..Default::default()
                },
            )
        };
        assert!(check_visibility_timeout(&queue(None), &f).is_ok());
        assert!(check_visibility_timeout(&queue(Some(60)), &f).is_ok());
        let Err(ControlError::Validation(e)) = check_visibility_timeout(&queue(Some(59)), &f)
        else {
            panic!("a visibility timeout under the function's timeout is refused");
        };
        assert_eq!(
            e.messages(),
            ["VisibilityTimeout (59 s) must be at least the timeout of function 'worker' (60 s)"]
        );
        // Not a queue setting elsewhere (validation refuses it there).
        let mut stream = queue(Some(1));
        stream.trigger_type = TriggerType::Stream;
        assert!(check_visibility_timeout(&stream, &f).is_ok());
    }
}
