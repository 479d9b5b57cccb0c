//! The Alibaba Cloud preset as configuration: the endpoints each region fills in
//! (shared/ALIBABA.md), the default application name and scope, and where the AccessKey comes
//! from. Config owns these so that it needs nothing of [`crate::alibaba`], which uses them.

use std::fmt;

/// An Alibaba Cloud site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// China site (aliyun.com).
    Cn,
    /// International site (alibabacloud.com).
    Intl,
}

/// The endpoints a region fills in for an `alibaba` profile and its upstream.
#[derive(Debug, Clone, Copy)]
pub struct RegionPreset {
    pub signin_url: &'static str,
    pub oauth_url: &'static str,
    pub ims_endpoint: &'static str,
    pub mcp_endpoint: &'static str,
}

pub const DEFAULT_OAUTH_APP_NAME: &str = "aliyun-cli-mcp-proxy";
pub const DEFAULT_SCOPE: &str = "/acs/mcp-server";

impl Region {
    /// Parses `CN` or `INTL`, in any case.
    pub fn parse(text: &str) -> Option<Region> {
        match text.trim().to_ascii_uppercase().as_str() {
            "CN" => Some(Region::Cn),
            "INTL" => Some(Region::Intl),
            _ => None,
        }
    }

    /// Every region, for lookups by endpoint.
    pub const ALL: [Region; 2] = [Region::Cn, Region::Intl];

    /// The region whose preset MCP endpoint `url` is, if any (a trailing `/` does not matter).
    pub fn of_mcp_endpoint(url: &url::Url) -> Option<Region> {
        Region::ALL
            .into_iter()
            .find(|r| url::Url::parse(r.preset().mcp_endpoint).is_ok_and(|preset| preset == *url))
    }

    pub fn preset(self) -> RegionPreset {
        match self {
            Region::Cn => RegionPreset {
                signin_url: "https://signin.aliyun.com/oauth2/v1/auth",
                oauth_url: "https://oauth.aliyun.com",
                ims_endpoint: "https://ims.aliyuncs.com",
                mcp_endpoint: "https://openapi-mcp.cn-hangzhou.aliyuncs.com",
            },
            Region::Intl => RegionPreset {
                signin_url: "https://signin.alibabacloud.com/oauth2/v1/auth",
                oauth_url: "https://oauth.alibabacloud.com",
                ims_endpoint: "https://ims.aliyuncs.com",
                mcp_endpoint: "https://openapi-mcp.ap-southeast-1.aliyuncs.com",
            },
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Cn => "CN",
            Region::Intl => "INTL",
        })
    }
}

/// Where the AccessKey comes from (the `access_key` setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    /// A profile of `~/.aliyun/config.json`; `None`: its `current` profile.
    Profile(Option<String>),
    /// A systemd credential name.
    Credential(String),
}

impl KeySource {
    /// Parses `env`, `profile:NAME` or `credential:NAME`.
    pub fn parse(text: &str) -> Result<KeySource, BadKeySource> {
        let bad = || BadKeySource(text.to_string());
        match text.split_once(':') {
            None if text == "env" => Ok(KeySource::Env),
            None if text == "profile" => Ok(KeySource::Profile(None)),
            Some(("profile", "")) => Ok(KeySource::Profile(None)),
            Some(("profile", name)) => Ok(KeySource::Profile(Some(name.to_string()))),
            Some(("credential", name)) if valid_credential_name(name) => {
                Ok(KeySource::Credential(name.to_string()))
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => f.write_str("env"),
            KeySource::Profile(None) => f.write_str("profile:"),
            KeySource::Profile(Some(n)) => write!(f, "profile:{n}"),
            KeySource::Credential(n) => write!(f, "credential:{n}"),
        }
    }
}

/// An `access_key` value that names no source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access_key `{0}` is not env, profile:NAME or credential:NAME")]
pub struct BadKeySource(pub String);

fn valid_credential_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_is_case_insensitive() {
        assert_eq!(Region::parse("cn"), Some(Region::Cn));
        assert_eq!(Region::parse("Intl"), Some(Region::Intl));
        assert_eq!(Region::parse("EU"), None);
    }

    #[test]
    fn preset_endpoints_are_recognised_with_or_without_a_slash() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        for r in Region::ALL {
            assert_eq!(
                Region::of_mcp_endpoint(&url(r.preset().mcp_endpoint)),
                Some(r)
            );
        }
        let cn = url("https://openapi-mcp.cn-hangzhou.aliyuncs.com/");
        assert_eq!(Region::of_mcp_endpoint(&cn), Some(Region::Cn));
        let own = url("https://openapi-mcp.cn-hangzhou.aliyuncs.com/mcp");
        assert_eq!(Region::of_mcp_endpoint(&own), None);
    }
}
