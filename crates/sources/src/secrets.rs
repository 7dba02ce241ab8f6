//! The build's secrets, as sources that authenticate (HTTP downloads, git remotes) see them.

use std::sync::Arc;

use tokio::task::JoinError;

/// Why a secret could not be read: the provider's error, which names the secret.
pub type SecretError = Box<dyn std::error::Error + Send + Sync>;

/// A provider of the build's secrets by id (the engine's session: `kiln build --secret`).
/// Sources ask for the ids of [`crate::http::Download::secret_names`] and
/// [`crate::git::Git::secret_names`]; values are never logged, shown or part of an error.
pub trait Secrets: Send + Sync {
    /// The value of secret `id`, or `None` when the build has no secret of that id. May block
    /// (reading a file): sources call it on the blocking pool.
    fn secret(&self, id: &str) -> Result<Option<Vec<u8>>, SecretError>;
}

/// A build without secrets.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSecrets;

impl Secrets for NoSecrets {
    fn secret(&self, _id: &str) -> Result<Option<Vec<u8>>, SecretError> {
        Ok(None)
    }
}

/// Why [`read`] failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The provider failed.
    Secret(SecretError),
    /// The blocking task failed.
    Task(JoinError),
}

/// The values of the secrets `ids` (in that order), read on the blocking pool. Stops at the
/// first one that cannot be read.
pub(crate) async fn read(
    secrets: &Arc<dyn Secrets>,
    ids: Vec<String>,
) -> Result<Vec<(String, Option<Vec<u8>>)>, ReadError> {
    let secrets = secrets.clone();
    tokio::task::spawn_blocking(move || {
        ids.into_iter()
            .map(|id| {
                let value = secrets.secret(&id)?;
                Ok((id, value))
            })
            .collect::<Result<Vec<_>, SecretError>>()
    })
    .await
    .map_err(ReadError::Task)?
    .map_err(ReadError::Secret)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Secrets from a map; an id mapped to `None` fails to read.
    pub(crate) struct Fixed(pub(crate) BTreeMap<String, Option<String>>);

    impl Secrets for Fixed {
        fn secret(&self, id: &str) -> Result<Option<Vec<u8>>, SecretError> {
            match self.0.get(id) {
                None => Ok(None),
                Some(Some(value)) => Ok(Some(value.clone().into_bytes())),
                Some(None) => Err(format!("secret {id}: unreadable").into()),
            }
        }
    }

    pub(crate) fn fixed(entries: &[(&str, Option<&str>)]) -> Arc<dyn Secrets> {
        Arc::new(Fixed(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        ))
    }

    #[tokio::test]
    async fn secrets_are_read_in_order_until_one_fails() {
        let secrets = fixed(&[("a", Some("1")), ("bad", None)]);
        let values = read(&secrets, vec!["a".into(), "missing".into()]).await.unwrap();
        assert_eq!(
            values,
            vec![
                ("a".to_string(), Some(b"1".to_vec())),
                ("missing".to_string(), None)
            ]
        );
        match read(&secrets, vec!["a".into(), "bad".into()]).await {
            Err(ReadError::Secret(e)) => assert_eq!(e.to_string(), "secret bad: unreadable"),
            other => panic!("expected a read failure, got {other:?}"),
        }
        let none: Arc<dyn Secrets> = Arc::new(NoSecrets);
        assert_eq!(
            read(&none, vec!["a".into()]).await.unwrap(),
            vec![("a".to_string(), None)]
        );
    }
}
