//! Containers as fleet makes them (name, labels, ports, mounts, limits, health check),
//! finds them and removes them.

use std::collections::BTreeMap;

use super::{Fleet, OnProgress};

use crate::engine::{
    Bind, ContainerInfo, ContainerSpec, DockerHealthcheck, LABEL_DIGEST, LABEL_GENERATION,
    LABEL_INSTANCE, LABEL_SCOPE, PublishedPort,
};
use crate::error::{EngineError, EngineOperation, Error, engine_error};
use crate::name::InstanceName;

use crate::resolve::ResolvedImage;
use crate::spec::template::TemplateContext;
use crate::spec::{DATA_MOUNT, InstanceSpec};
use crate::store::InstanceRecord;
use crate::view::Progress;

impl Fleet {
    /// Creates (does not start) the container of `generation`, publishing the allocated
    /// ports when `publish` (not when the instance is reached through `fleet serve`).
    pub(crate) async fn create_container(
        &self,
        spec: &InstanceSpec,
        resolved: &ResolvedImage,
        generation: u64,
        publish: bool,
        progress: &OnProgress<'_>,
    ) -> Result<String, Error> {
        let name = self.container_name(&spec.name, generation);
        progress(Progress::Creating {
            container: name.clone(),
        });
        let network = self.config.network.clone();
        self.engine
            .ensure_network(&network, &self.scope_labels())
            .await
            .map_err(engine_error(EngineOperation::CreateNetwork, &network))?;
        let mut labels = self.scope_labels();
        labels.extend(spec.labels.clone());
        labels.insert(LABEL_INSTANCE.into(), spec.name.to_string());
        labels.insert(LABEL_GENERATION.into(), generation.to_string());
        labels.insert(LABEL_DIGEST.into(), resolved.digest.to_string());
        // Env values and volume paths are templates of the instance's allocation.
        let context = self.template_context(spec)?;
        let mut env = BTreeMap::from([("FLEET_INSTANCE".to_owned(), spec.name.to_string())]);
        env.extend(spec.rendered_env(&context)?);
        let ports = self
            .store
            .instance_ports(&spec.name)?
            .into_iter()
            .map(|p| PublishedPort {
                container: p.container,
                host_ip: self.config.bind_address,
                host: p.host,
            })
            .filter(|_| publish)
            .collect();
        let mut binds = vec![Bind {
            host: self.data_dir(spec),
            container: DATA_MOUNT.into(),
            read_only: false,
        }];
        binds.extend(spec.rendered_volumes(&context)?.into_iter().map(|v| Bind {
            host: v.host,
            container: v.container,
            read_only: v.read_only,
        }));
        let healthcheck = spec.docker_healthcheck.as_ref().map(|command| {
            let policy = spec
                .health
                .as_ref()
                .map(|h| h.policy.clone())
                .unwrap_or_else(crate::spec::default_policy);
            DockerHealthcheck {
                command: command.clone(),
                interval: policy.interval,
                timeout: policy.timeout,
                retries: policy.failure_threshold.get(),
                start_period: policy.start_period,
            }
        });
        let container = ContainerSpec {
            name: name.clone(),
            image: resolved.reference.clone(),
            env,
            labels,
            ports,
            binds,
            network: Some(network),
            memory_bytes: spec.resources.memory_bytes,
            nano_cpus: spec.resources.cpus.map(|c| (c * 1e9) as u64),
            restart: spec.restart,
            user: spec.user.clone(),
            healthcheck,
        };
        self.engine
            .create_container(&container)
            .await
            .map_err(engine_error(EngineOperation::CreateContainer, name))
    }

    /// What `spec`'s templated settings (env values, volume paths) are rendered with:
    /// its name, group, allocated host ports (from the store), data directory, the
    /// state directory, and its vars over its group's and the fleet's (`[vars]`).
    pub fn template_context(&self, spec: &InstanceSpec) -> Result<TemplateContext, Error> {
        let allocated = self.store.instance_ports(&spec.name)?;
        let mut context = TemplateContext::new(spec.name.as_str());
        context.group.clone_from(&spec.group);
        context.ports = spec
            .ports
            .iter()
            .filter_map(|port| {
                let host = allocated.iter().find(|a| a.container == port.container)?;
                Some((port.container, host.host))
            })
            .collect();
        context.data_dir = self.data_dir(spec).to_string_lossy().into_owned();
        context.state_dir = self.dirs.root().to_string_lossy().into_owned();
        context.vars = self
            .config
            .vars
            .for_instance(spec.group.as_deref(), &spec.vars);
        Ok(context)
    }

    pub(crate) async fn inspect(&self, container: &str) -> Result<Option<ContainerInfo>, Error> {
        self.engine
            .inspect_container(container)
            .await
            .map_err(engine_error(EngineOperation::InspectContainer, &container))
    }

    pub(crate) async fn remove_container(&self, container: &str) -> Result<(), Error> {
        match self.engine.remove_container(container).await {
            Ok(()) | Err(EngineError::NotFound { .. }) => Ok(()),
            Err(source) => Err(engine_error(EngineOperation::RemoveContainer, container)(
                source,
            )),
        }
    }

    /// The containers of this fleet that carry `name`'s instance label.
    pub(crate) async fn instance_containers(
        &self,
        name: &InstanceName,
    ) -> Result<Vec<ContainerInfo>, Error> {
        let scope = self.store.scope().to_owned();
        self.engine
            .list_containers(&[(LABEL_SCOPE, &scope), (LABEL_INSTANCE, name.as_str())])
            .await
            .map_err(engine_error(EngineOperation::ListContainers, name))
    }

    /// The instance's container, recreated from the stored digest if it vanished.
    pub(crate) async fn ensure_container(
        &self,
        record: &InstanceRecord,
        progress: &OnProgress<'_>,
    ) -> Result<String, Error> {
        if let Some(id) = &record.container_id
            && self.inspect(id).await?.is_some()
        {
            return Ok(id.clone());
        }
        self.recreate(record, progress).await
    }

    /// Makes a new container (next generation) for the stored digest and records it.
    pub(crate) async fn recreate(
        &self,
        record: &InstanceRecord,
        progress: &OnProgress<'_>,
    ) -> Result<String, Error> {
        let spec = &record.spec;
        let resolved = match &record.digest {
            Some(digest) => ResolvedImage {
                tag: record.tag.clone(),
                digest: digest.clone(),
                reference: format!("{}@{digest}", spec.image.image().name()),
            },
            None => self.resolve(spec).await?,
        };
        self.pull(spec, &resolved, progress).await?;
        if let Some(old) = &record.container_id {
            self.remove_container(old).await?;
        }
        let generation = record.generation + 1;
        let publish = !self.behind_proxy(&spec.name)?;
        let container = self
            .create_container(spec, &resolved, generation, publish, progress)
            .await?;
        self.store.set_deployed(
            &spec.name,
            generation,
            resolved.tag.as_deref(),
            &resolved.digest,
            &container,
        )?;
        Ok(container)
    }
}
