//! Templates: how to run one member of a service, with single inheritance (`extends`).
//!
//! A stored [`Template`] holds overrides only; [`resolve`] walks the `extends` chain (bounded,
//! cycle-checked) and merges it field by field into an [`EffectiveTemplate`]: a field set in a
//! template wins over the one it extends, an unset field inherits, `env` maps are merged key by
//! key. Base templates may be incomplete; completeness is checked where a template is used.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::FleetError;
use crate::name::{DcName, TemplateName};
use crate::resources::{ResourceOverride, Resources};

/// Longest `extends` chain, counting the template itself.
pub const TEMPLATE_CHAIN_LEN_MAX: usize = 16;
/// Default health check interval.
pub const HEALTH_INTERVAL_MS_DEFAULT: u64 = 10_000;
/// Default health check timeout.
pub const HEALTH_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Default number of consecutive successes before an instance counts as healthy.
pub const HEALTH_RISE_DEFAULT: u32 = 2;
/// Default number of consecutive failures before an instance counts as unhealthy.
pub const HEALTH_FALL_DEFAULT: u32 = 3;
/// Longest warm-up of a health check (one hour).
pub const HEALTH_WARMUP_MS_MAX: u64 = 3_600_000;

/// A template as stored: every field is an override of the template it extends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The template's name.
    pub name: TemplateName,
    /// The template this one extends, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<TemplateName>,
    /// The data center members from this template run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_center: Option<DcName>,
    /// Default resources of a member (a service may override them).
    #[serde(default)]
    pub resources: ResourceOverride,
    /// How the agent runs the process.
    #[serde(default)]
    pub run: RunOverride,
    /// How the agent checks the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthOverride>,
    /// Port the load balancer exposes for the service, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend_port: Option<u16>,
}

impl Template {
    /// A template with nothing set but its name.
    pub fn named(name: TemplateName) -> Template {
        Template {
            name,
            extends: None,
            data_center: None,
            resources: ResourceOverride::default(),
            run: RunOverride::default(),
            health: None,
            frontend_port: None,
        }
    }
}

/// Overrides of [`RunSpec`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOverride {
    /// Program to run (process driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments (replaces the inherited list as a whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Environment, merged key by key over the inherited one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Port the process listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Image, for drivers that run images (unused by the process driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// How the agent runs a member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Program to run (process driver).
    pub command: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its environment.
    pub env: BTreeMap<String, String>,
    /// Port the process listens on.
    pub port: Option<u16>,
    /// Image, for drivers that run images.
    pub image: Option<String>,
}

/// What a health check probes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Probe {
    /// A TCP connection to the run port succeeds.
    Tcp,
    /// An HTTP GET of `path` on the run port answers 2xx.
    Http {
        /// Path to request, starting with `/`.
        path: String,
    },
    /// A command exits with status 0.
    Exec {
        /// Program and arguments.
        command: Vec<String>,
    },
}

/// Field-level overrides of [`HealthCheck`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthOverride {
    /// What to probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
    /// Time between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// Time a probe may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Consecutive successes to become healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    /// Consecutive failures to become unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    /// Time over which a healthy instance's weight ramps up to full (0: full at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_ms: Option<u64>,
}

/// A resolved health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// What to probe.
    pub probe: Probe,
    /// Time between probes (default [`HEALTH_INTERVAL_MS_DEFAULT`]).
    pub interval_ms: u64,
    /// Time a probe may take (default [`HEALTH_TIMEOUT_MS_DEFAULT`]).
    pub timeout_ms: u64,
    /// Consecutive successes to become healthy (default [`HEALTH_RISE_DEFAULT`]).
    pub rise: u32,
    /// Consecutive failures to become unhealthy (default [`HEALTH_FALL_DEFAULT`]).
    pub fall: u32,
    /// Time over which the weight of an instance that became healthy ramps up to full, in
    /// steps its agent reports (default 0: full weight at once). At most
    /// [`HEALTH_WARMUP_MS_MAX`].
    #[serde(default)]
    pub warmup_ms: u64,
}

/// A template with its `extends` chain merged in and every required field present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveTemplate {
    /// The template's name.
    pub name: TemplateName,
    /// The chain that was merged, this template first.
    pub chain: Vec<TemplateName>,
    /// Where its members run.
    pub data_center: DcName,
    /// Default resources of a member.
    pub resources: Resources,
    /// How to run a member.
    pub run: RunSpec,
    /// How to check a member, if at all.
    pub health: Option<HealthCheck>,
    /// Port the load balancer exposes, if any.
    pub frontend_port: Option<u16>,
}

/// The `extends` chain of `name`, `name` first. Fails on a missing link, a cycle or a chain
/// longer than [`TEMPLATE_CHAIN_LEN_MAX`].
pub(crate) fn chain<'a>(
    templates: &'a BTreeMap<TemplateName, Template>,
    name: &TemplateName,
) -> Result<Vec<&'a Template>, FleetError> {
    let mut chain: Vec<&Template> = Vec::new();
    let mut next = Some(name.clone());
    while let Some(current) = next {
        if let Some(position) = chain.iter().position(|t| t.name == current) {
            let mut cycle: Vec<TemplateName> =
                chain[position..].iter().map(|t| t.name.clone()).collect();
            cycle.push(current);
            return Err(FleetError::TemplateCycle { chain: cycle });
        }
        let Some(template) = templates.get(&current) else {
            return Err(match chain.last() {
                None => FleetError::not_found(TemplateName::KIND, &current),
                Some(child) => FleetError::InvalidTemplate {
                    template: child.name.clone(),
                    reason: format!("it extends {current}, which does not exist"),
                },
            });
        };
        if chain.len() == TEMPLATE_CHAIN_LEN_MAX {
            return Err(FleetError::InvalidTemplate {
                template: name.clone(),
                reason: format!(
                    "its extends chain is longer than {TEMPLATE_CHAIN_LEN_MAX} templates"
                ),
            });
        }
        chain.push(template);
        next = template.extends.clone();
    }
    Ok(chain)
}

/// Resolves `name` into an effective template (see the module documentation).
pub fn resolve(
    templates: &BTreeMap<TemplateName, Template>,
    name: &TemplateName,
) -> Result<EffectiveTemplate, FleetError> {
    let chain = chain(templates, name)?;
    let mut data_center = None;
    let mut resources = ResourceOverride::default();
    let mut run = RunSpec::default();
    let mut health = HealthOverride::default();
    let mut frontend_port = None;
    // Base first, so that each later template overrides what it sets.
    for template in chain.iter().rev() {
        if template.data_center.is_some() {
            data_center.clone_from(&template.data_center);
        }
        resources = template.resources.over(&resources);
        let r = &template.run;
        if r.command.is_some() {
            run.command.clone_from(&r.command);
        }
        if let Some(args) = &r.args {
            run.args.clone_from(args);
        }
        for (key, value) in &r.env {
            run.env.insert(key.clone(), value.clone());
        }
        run.port = r.port.or(run.port);
        if r.image.is_some() {
            run.image.clone_from(&r.image);
        }
        if let Some(h) = &template.health {
            if h.probe.is_some() {
                health.probe.clone_from(&h.probe);
            }
            health.interval_ms = h.interval_ms.or(health.interval_ms);
            health.timeout_ms = h.timeout_ms.or(health.timeout_ms);
            health.rise = h.rise.or(health.rise);
            health.fall = h.fall.or(health.fall);
            health.warmup_ms = h.warmup_ms.or(health.warmup_ms);
        }
        frontend_port = template.frontend_port.or(frontend_port);
    }
    let names: Vec<TemplateName> = chain.iter().map(|t| t.name.clone()).collect();
    let via = if names.len() > 1 {
        format!(
            " (nor in the templates it extends: {})",
            crate::error::join(&names[1..], " -> ")
        )
    } else {
        String::new()
    };
    let incomplete = |what: &str| FleetError::InvalidTemplate {
        template: name.clone(),
        reason: format!("{what} is not set in it{via}"),
    };
    let data_center = data_center.ok_or_else(|| incomplete("data_center"))?;
    let resources = resources
        .complete()
        .map_err(|missing| incomplete(&format!("{} in resources", field_of(missing))))?;
    if run.command.is_none() && run.image.is_none() {
        return Err(incomplete("run.command (or run.image)"));
    }
    let health = match health.probe {
        None => None,
        Some(probe) => Some(HealthCheck {
            probe,
            interval_ms: health.interval_ms.unwrap_or(HEALTH_INTERVAL_MS_DEFAULT),
            timeout_ms: health.timeout_ms.unwrap_or(HEALTH_TIMEOUT_MS_DEFAULT),
            rise: health.rise.unwrap_or(HEALTH_RISE_DEFAULT),
            fall: health.fall.unwrap_or(HEALTH_FALL_DEFAULT),
            warmup_ms: health.warmup_ms.unwrap_or(0),
        }),
    };
    let effective = EffectiveTemplate {
        name: name.clone(),
        chain: names,
        data_center,
        resources,
        run,
        health,
        frontend_port,
    };
    validate_effective(&effective)?;
    Ok(effective)
}

fn field_of(resource: crate::resources::Resource) -> &'static str {
    match resource {
        crate::resources::Resource::Cpu => "cpu_millis",
        crate::resources::Resource::Memory => "memory_bytes",
        crate::resources::Resource::Disk => "disk_bytes",
    }
}

fn validate_effective(template: &EffectiveTemplate) -> Result<(), FleetError> {
    let invalid = |reason: String| FleetError::InvalidTemplate {
        template: template.name.clone(),
        reason,
    };
    if let Some(health) = &template.health {
        match &health.probe {
            Probe::Tcp | Probe::Http { .. } if template.run.port.is_none() => {
                return Err(invalid(
                    "a tcp or http health check needs run.port to be set".to_owned(),
                ));
            }
            Probe::Http { path } if !path.starts_with('/') => {
                return Err(invalid(format!(
                    "the http health check path {path:?} must start with '/'"
                )));
            }
            Probe::Exec { command } if command.is_empty() => {
                return Err(invalid(
                    "the exec health check command must not be empty".to_owned(),
                ));
            }
            _ => {}
        }
        if health.interval_ms == 0 || health.timeout_ms == 0 {
            return Err(invalid(
                "health check interval_ms and timeout_ms must be positive".to_owned(),
            ));
        }
        if health.timeout_ms > health.interval_ms {
            return Err(invalid(format!(
                "health check timeout_ms ({}) must not exceed interval_ms ({})",
                health.timeout_ms, health.interval_ms
            )));
        }
        if health.rise == 0 || health.fall == 0 {
            return Err(invalid(
                "health check rise and fall must be at least 1".to_owned(),
            ));
        }
        if health.warmup_ms > HEALTH_WARMUP_MS_MAX {
            return Err(invalid(format!(
                "health check warmup_ms ({}) must not exceed {HEALTH_WARMUP_MS_MAX} (one hour)",
                health.warmup_ms
            )));
        }
    }
    if template.resources.cpu_millis == 0 || template.resources.memory_bytes == 0 {
        return Err(invalid(
            "resources.cpu_millis and resources.memory_bytes must be positive".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> TemplateName {
        TemplateName::new(text).unwrap()
    }

    fn base() -> Template {
        let mut t = Template::named(name("web_base"));
        t.resources = ResourceOverride {
            cpu_millis: Some(500),
            memory_bytes: Some(1 << 30),
            disk_bytes: Some(10 << 30),
        };
        t.run = RunOverride {
            command: Some("/usr/bin/web".into()),
            args: Some(vec!["--serve".into()]),
            env: [
                ("MODE".to_owned(), "prod".to_owned()),
                ("A".into(), "1".into()),
            ]
            .into(),
            port: Some(8080),
            image: None,
        };
        t.health = Some(HealthOverride {
            probe: Some(Probe::Http {
                path: "/health".into(),
            }),
            ..HealthOverride::default()
        });
        t
    }

    fn set(templates: Vec<Template>) -> BTreeMap<TemplateName, Template> {
        templates.into_iter().map(|t| (t.name.clone(), t)).collect()
    }

    #[test]
    fn child_overrides_fields_and_inherits_the_rest() {
        let mut child = Template::named(name("web_dc2"));
        child.extends = Some(name("web_base"));
        child.data_center = Some(DcName::new("dc2").unwrap());
        child.resources.memory_bytes = Some(4 << 30);
        child.run.env = [("MODE".to_owned(), "canary".to_owned())].into();
        child.health = Some(HealthOverride {
            interval_ms: Some(5_000),
            warmup_ms: Some(30_000),
            ..HealthOverride::default()
        });
        let templates = set(vec![base(), child]);
        let effective = resolve(&templates, &name("web_dc2")).unwrap();
        assert_eq!(effective.chain, vec![name("web_dc2"), name("web_base")]);
        assert_eq!(effective.data_center.as_str(), "dc2");
        assert_eq!(effective.resources.cpu_millis, 500);
        assert_eq!(effective.resources.memory_bytes, 4 << 30);
        assert_eq!(effective.run.command.as_deref(), Some("/usr/bin/web"));
        assert_eq!(effective.run.env["MODE"], "canary");
        assert_eq!(effective.run.env["A"], "1");
        let health = effective.health.unwrap();
        assert_eq!(health.interval_ms, 5_000);
        assert_eq!(health.timeout_ms, HEALTH_TIMEOUT_MS_DEFAULT);
        assert_eq!(health.warmup_ms, 30_000);
        assert_eq!(
            health.probe,
            Probe::Http {
                path: "/health".into()
            }
        );
    }

    #[test]
    fn incomplete_template_says_what_is_missing() {
        let mut child = Template::named(name("web_dc2"));
        child.extends = Some(name("web_base"));
        let templates = set(vec![base(), child]);
        assert_eq!(
            resolve(&templates, &name("web_dc2"))
                .unwrap_err()
                .to_string(),
            "template web_dc2: data_center is not set in it \
             (nor in the templates it extends: web_base)"
        );
        let mut lone = Template::named(name("lone"));
        lone.data_center = Some(DcName::new("dc1").unwrap());
        lone.resources.cpu_millis = Some(1);
        assert_eq!(
            resolve(&set(vec![lone]), &name("lone"))
                .unwrap_err()
                .to_string(),
            "template lone: memory_bytes in resources is not set in it"
        );
    }

    #[test]
    fn detects_cycles_and_missing_parents() {
        let mut a = Template::named(name("a"));
        a.extends = Some(name("b"));
        let mut b = Template::named(name("b"));
        b.extends = Some(name("c"));
        let mut c = Template::named(name("c"));
        c.extends = Some(name("b"));
        let templates = set(vec![a.clone(), b, c]);
        assert_eq!(
            resolve(&templates, &name("a")).unwrap_err().to_string(),
            "template cycle: b -> c -> b"
        );
        a.extends = Some(name("ghost"));
        assert_eq!(
            resolve(&set(vec![a]), &name("a")).unwrap_err().to_string(),
            "template a: it extends ghost, which does not exist"
        );
    }

    #[test]
    fn chain_length_is_bounded() {
        let mut templates = Vec::new();
        for n in 0..=TEMPLATE_CHAIN_LEN_MAX {
            let mut t = Template::named(name(&format!("t{n}")));
            if n > 0 {
                t.extends = Some(name(&format!("t{}", n - 1)));
            }
            templates.push(t);
        }
        let last = name(&format!("t{TEMPLATE_CHAIN_LEN_MAX}"));
        assert!(
            resolve(&set(templates), &last)
                .unwrap_err()
                .to_string()
                .contains("longer than 16 templates")
        );
    }

    #[test]
    fn validates_health_checks() {
        let mut t = base();
        t.data_center = Some(DcName::new("dc1").unwrap());
        t.run.port = None;
        assert_eq!(
            resolve(&set(vec![t.clone()]), &name("web_base"))
                .unwrap_err()
                .to_string(),
            "template web_base: a tcp or http health check needs run.port to be set"
        );
        t.run.port = Some(80);
        t.health = Some(HealthOverride {
            probe: Some(Probe::Exec { command: vec![] }),
            ..HealthOverride::default()
        });
        assert!(
            resolve(&set(vec![t]), &name("web_base"))
                .unwrap_err()
                .to_string()
                .contains("exec health check command must not be empty")
        );
    }

    #[test]
    fn warmups_default_to_none_are_bounded_and_older_json_still_reads() {
        let mut t = base();
        t.data_center = Some(DcName::new("dc1").unwrap());
        let effective = resolve(&set(vec![t.clone()]), &name("web_base")).unwrap();
        assert_eq!(effective.health.map(|h| h.warmup_ms), Some(0));
        t.health = Some(HealthOverride {
            warmup_ms: Some(HEALTH_WARMUP_MS_MAX + 1),
            ..t.health.unwrap()
        });
        assert!(
            resolve(&set(vec![t]), &name("web_base"))
                .unwrap_err()
                .to_string()
                .contains("warmup_ms (3600001) must not exceed 3600000")
        );
        // Rows and answers written before the warm-up existed.
        let stored: HealthOverride = serde_json::from_str(r#"{"interval_ms": 1000}"#).unwrap();
        assert_eq!(stored.warmup_ms, None);
        let check: HealthCheck = serde_json::from_str(
            r#"{"probe": {"kind": "tcp"}, "interval_ms": 1000, "timeout_ms": 100, "rise": 1, "fall": 1}"#,
        )
        .unwrap();
        assert_eq!(check.warmup_ms, 0);
    }
}
