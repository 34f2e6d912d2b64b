//! Resource amounts (CPU, memory, disk) and how they are shown to people.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of each schedulable resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU in thousandths of a core.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Disk in bytes.
    pub disk_bytes: u64,
}

/// One schedulable resource dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// CPU, in millicores.
    Cpu,
    /// Memory, in bytes.
    Memory,
    /// Disk, in bytes.
    Disk,
}

impl Resource {
    /// Every dimension, in the order messages list them.
    pub const ALL: [Resource; 3] = [Resource::Cpu, Resource::Memory, Resource::Disk];

    /// Human name of the dimension, as used in messages.
    pub fn label(self) -> &'static str {
        match self {
            Resource::Cpu => "CPU",
            Resource::Memory => "memory",
            Resource::Disk => "disk",
        }
    }

    /// Formats an amount of this resource for a human: `1500m`, `3.1 GiB`.
    pub fn format(self, amount: u64) -> String {
        match self {
            Resource::Cpu => format!("{amount}m"),
            Resource::Memory | Resource::Disk => format_bytes(amount),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl Resources {
    /// Nothing.
    pub const ZERO: Resources = Resources {
        cpu_millis: 0,
        memory_bytes: 0,
        disk_bytes: 0,
    };

    /// The amount of one dimension.
    pub fn get(&self, resource: Resource) -> u64 {
        match resource {
            Resource::Cpu => self.cpu_millis,
            Resource::Memory => self.memory_bytes,
            Resource::Disk => self.disk_bytes,
        }
    }

    /// Whether `self` fits in `free` in every dimension.
    pub fn fits_in(&self, free: &Resources) -> bool {
        self.cpu_millis <= free.cpu_millis
            && self.memory_bytes <= free.memory_bytes
            && self.disk_bytes <= free.disk_bytes
    }

    /// Component-wise sum, saturating at `u64::MAX`.
    pub fn saturating_add(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            disk_bytes: self.disk_bytes.saturating_add(other.disk_bytes),
        }
    }

    /// Component-wise difference, saturating at zero.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            disk_bytes: self.disk_bytes.saturating_sub(other.disk_bytes),
        }
    }

    /// Component-wise product by `factor`, saturating at `u64::MAX`.
    pub fn saturating_mul(&self, factor: u64) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_mul(factor),
            memory_bytes: self.memory_bytes.saturating_mul(factor),
            disk_bytes: self.disk_bytes.saturating_mul(factor),
        }
    }

    /// Component-wise maximum.
    pub fn max(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
            disk_bytes: self.disk_bytes.max(other.disk_bytes),
        }
    }

    /// The dimensions where `self` exceeds `limit`.
    pub fn exceeding(&self, limit: &Resources) -> Vec<Resource> {
        Resource::ALL
            .into_iter()
            .filter(|r| self.get(*r) > limit.get(*r))
            .collect()
    }

    /// How many copies of `shape` fit in `self` (`u64::MAX` when `shape` is zero).
    pub fn copies_of(&self, shape: &Resources) -> u64 {
        Resource::ALL
            .into_iter()
            .filter(|r| shape.get(*r) > 0)
            .map(|r| self.get(r) / shape.get(r))
            .min()
            .unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} CPU, {} memory, {} disk",
            Resource::Cpu.format(self.cpu_millis),
            format_bytes(self.memory_bytes),
            format_bytes(self.disk_bytes)
        )
    }
}

/// Field-level override of [`Resources`]: unset fields keep the inherited value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceOverride {
    /// CPU in millicores, if overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    /// Memory in bytes, if overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Disk in bytes, if overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
}

impl ResourceOverride {
    /// `self` on top of `base`: set fields of `self` win.
    pub fn over(&self, base: &ResourceOverride) -> ResourceOverride {
        ResourceOverride {
            cpu_millis: self.cpu_millis.or(base.cpu_millis),
            memory_bytes: self.memory_bytes.or(base.memory_bytes),
            disk_bytes: self.disk_bytes.or(base.disk_bytes),
        }
    }

    /// `self` applied to complete resources.
    pub fn apply_to(&self, base: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.unwrap_or(base.cpu_millis),
            memory_bytes: self.memory_bytes.unwrap_or(base.memory_bytes),
            disk_bytes: self.disk_bytes.unwrap_or(base.disk_bytes),
        }
    }

    /// The complete resources, or the first missing dimension.
    pub fn complete(&self) -> Result<Resources, Resource> {
        Ok(Resources {
            cpu_millis: self.cpu_millis.ok_or(Resource::Cpu)?,
            memory_bytes: self.memory_bytes.ok_or(Resource::Memory)?,
            disk_bytes: self.disk_bytes.ok_or(Resource::Disk)?,
        })
    }
}

/// Formats a byte count with binary units and one decimal, rounding down so that "has 3.9 GiB
/// free" never overstates what a host has: `512 B`, `3.1 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit_bytes: u128 = 1024;
    let mut index = 0;
    while index + 1 < UNITS.len() && u128::from(bytes) >= unit_bytes * 1024 {
        unit_bytes *= 1024;
        index += 1;
    }
    let tenths = u128::from(bytes) * 10 / unit_bytes;
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn formats_bytes_rounding_down() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(4 * GIB), "4.0 GiB");
        assert_eq!(format_bytes(GIB * 31 / 10 + 1), "3.1 GiB");
        assert_eq!(format_bytes(4 * GIB - 1), "3.9 GiB");
        assert_eq!(format_bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(format_bytes(u64::MAX), "15.9 EiB");
    }

    #[test]
    fn arithmetic() {
        let a = Resources {
            cpu_millis: 1000,
            memory_bytes: 4 * GIB,
            disk_bytes: 10 * GIB,
        };
        let b = Resources {
            cpu_millis: 250,
            memory_bytes: GIB,
            disk_bytes: 0,
        };
        assert!(b.fits_in(&a));
        assert!(!a.fits_in(&b));
        assert_eq!(a.copies_of(&b), 4);
        assert_eq!(b.exceeding(&a), vec![]);
        assert_eq!(
            a.exceeding(&b),
            vec![Resource::Cpu, Resource::Memory, Resource::Disk]
        );
        assert_eq!(a.saturating_sub(&b).saturating_add(&b), a);
        assert_eq!(Resources::ZERO.copies_of(&Resources::ZERO), u64::MAX);
    }

    #[test]
    fn override_fields() {
        let base = ResourceOverride {
            cpu_millis: Some(100),
            memory_bytes: Some(200),
            disk_bytes: None,
        };
        let top = ResourceOverride {
            cpu_millis: Some(500),
            ..ResourceOverride::default()
        };
        let merged = top.over(&base);
        assert_eq!(merged.cpu_millis, Some(500));
        assert_eq!(merged.memory_bytes, Some(200));
        assert_eq!(merged.complete(), Err(Resource::Disk));
    }
}
