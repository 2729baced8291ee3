//! The containers of an environment as the dashboard lists them: one engine listing, with
//! the reference each container was created from.

use futures::StreamExt;

use crate::engine::{ContainerFacts, Engine, EngineError};
use crate::reference::looks_like_image_id;

/// Engine inspections in flight at once while a listing is completed.
const INSPECT_CONCURRENCY: usize = 8;

/// One container of an environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedContainer {
    /// Full container id.
    pub id: String,
    /// The name without Docker's leading `/`.
    pub name: String,
    /// The reference the container was created from (`Config.Image`).
    pub image: String,
    /// `running`, `exited`, `created`, …
    pub state: String,
    /// Swarm node that runs the container, to send as `nodeName` with a status request.
    pub node: Option<String>,
}

/// Lists every container of the engine, stopped ones included, ordered by name.
///
/// The engine's listing shows the image ID in place of the reference once the tag has
/// moved to another local image, so those containers are inspected for `Config.Image`.
/// A container removed between the listing and the inspection keeps the image ID.
pub async fn list_containers(engine: &Engine) -> Result<Vec<ListedContainer>, EngineError> {
    let listed = engine.list_containers(true).await?;

    let mut containers: Vec<ListedContainer> = futures::stream::iter(listed)
        .map(|facts| async move {
            if !looks_like_image_id(&facts.config_image) {
                return listed_container(facts);
            }
            match engine.inspect_container(&facts.id).await {
                Ok(Some(inspected)) if !inspected.config_image.is_empty() => {
                    listed_container(ContainerFacts {
                        config_image: inspected.config_image,
                        ..facts
                    })
                }
                Ok(_) => listed_container(facts),
                Err(error) => {
                    tracing::debug!(
                        container_id = %facts.id,
                        error = &error as &dyn std::error::Error,
                        "container inspect failed, listing its image id"
                    );
                    listed_container(facts)
                }
            }
        })
        .buffer_unordered(INSPECT_CONCURRENCY)
        .collect()
        .await;

    containers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    Ok(containers)
}

fn listed_container(facts: ContainerFacts) -> ListedContainer {
    ListedContainer {
        id: facts.id,
        name: facts.name,
        image: facts.config_image,
        state: facts.state,
        // NOTE: an environment is one engine reached at one address, so its listing has
        // no node. Swarm nodes behind one address need an agent that imgstat does not
        // speak yet; until then `node` stays `None`.
        node: None,
    }
}
