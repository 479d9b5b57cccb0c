//! Alibaba Cloud preset: the endpoints of each region (shared/ALIBABA.md).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_is_case_insensitive() {
        assert_eq!(Region::parse("cn"), Some(Region::Cn));
        assert_eq!(Region::parse("Intl"), Some(Region::Intl));
        assert_eq!(Region::parse("EU"), None);
    }
}
