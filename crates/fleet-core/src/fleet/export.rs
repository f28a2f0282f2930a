//! Gathering what `fleet export` writes: each instance's spec with the digest it runs,
//! its host ports, its environment and its data directory.

use std::collections::BTreeMap;

use super::Fleet;

use crate::error::Error;
use crate::export::ExportedInstance;
use crate::name::InstanceName;
use crate::view::PortMapping;

impl Fleet {
    /// The named instances as [`crate::export`] writes them, in the order given: the
    /// image by the digest each runs (resolved from its channel only if none is
    /// recorded), its allocated host ports, the environment its container gets (the
    /// env file read now) and its data directory. Reads the store; changes nothing.
    pub async fn export(&self, names: &[InstanceName]) -> Result<Vec<ExportedInstance>, Error> {
        let mut exported = Vec::with_capacity(names.len());
        for name in names {
            let record = self.record(name)?;
            let spec = &record.spec;
            let (image, tag) = match &record.digest {
                Some(digest) => (
                    format!("{}@{digest}", spec.image.image().name()),
                    record.tag.clone(),
                ),
                None => {
                    let resolved = self.resolve(spec).await?;
                    (resolved.reference, resolved.tag)
                }
            };
            let ports = self
                .store
                .instance_ports(name)?
                .into_iter()
                .map(|p| PortMapping {
                    container: p.container,
                    host: p.host,
                })
                .collect();
            // As `create_container` sets it.
            let mut env = BTreeMap::from([("FLEET_INSTANCE".to_owned(), name.to_string())]);
            env.extend(spec.resolved_env()?);
            exported.push(
                ExportedInstance::new(
                    spec.clone(),
                    image,
                    ports,
                    self.config.bind_address,
                    env,
                    self.data_dir(spec),
                )
                .with_tag(tag),
            );
        }
        Ok(exported)
    }
}
