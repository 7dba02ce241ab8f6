//! What a request addresses: one repository on one registry, with the access it needs, and the
//! errors that name it.

use oci::{Descriptor, Digest};
use reqwest::{Response, Url};

use crate::error::Error;
use crate::http::Http;

/// What a request needs the right to do; decides the token scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
}

/// One repository on one registry, as requests address it.
pub(crate) struct Target {
    /// The registry as written in the reference: the key for credentials and tokens.
    pub registry: String,
    pub repository: String,
    /// The reference, for messages.
    pub reference: String,
    /// `scheme://host[:port]/` of the registry's API: the only origin credentials go to.
    pub base: Url,
    pub access: Access,
}

impl Target {
    /// The token scope for this repository and access (`repository:<name>:pull[,push]`).
    pub fn scope(&self) -> String {
        let actions = match self.access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        format!("repository:{}:{actions}", self.repository)
    }

    /// The API URL `v2/<repository>/<tail>`.
    pub fn url(&self, tail: &str) -> Result<Url, Error> {
        let text = format!("{}v2/{}/{tail}", self.base, self.repository);
        Url::parse(&text).map_err(|e| Error::InvalidResponse {
            url: text,
            reason: format!("invalid url: {e}"),
        })
    }

    pub fn digest_mismatch(&self, expected: &Digest, actual: &Digest) -> Error {
        let (expected, actual) = (expected.clone(), actual.clone());
        Error::DigestMismatch {
            reference: self.reference.clone(),
            expected,
            actual,
        }
    }

    pub fn size_mismatch(&self, descriptor: &Descriptor, actual: u64) -> Error {
        let (digest, expected) = (descriptor.digest.clone(), descriptor.size);
        Error::SizeMismatch {
            reference: self.reference.clone(),
            digest,
            expected,
            actual,
        }
    }

    pub fn unauthorized(&self, message: String) -> Error {
        Error::Unauthorized {
            reference: self.reference.clone(),
            registry: self.registry.clone(),
            message,
        }
    }

    /// The error for an unexpected status, with an excerpt of the body.
    pub async fn http_error(
        &self,
        http: &Http,
        action: &'static str,
        url: &Url,
        response: Response,
    ) -> Error {
        let status = response.status().as_u16();
        let message = http.error_excerpt(response).await;
        Error::Http {
            action,
            reference: self.reference.clone(),
            url: url.to_string(),
            status,
            message,
        }
    }
}
