//! The MCP tools the test upstream serves, over Streamable HTTP and legacy SSE alike.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ProgressNotificationParam, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;

/// Arguments of `echo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text to return unchanged.
    pub text: String,
}

/// Arguments of `add`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AddArgs {
    /// Left operand.
    pub a: f64,
    /// Right operand.
    pub b: f64,
}

/// Arguments of `slow_count`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SlowCountArgs {
    /// How many notifications to send before the result.
    pub n: u32,
    /// Pause between notifications, for demos; tests leave it at 0.
    #[serde(default)]
    pub delay_ms: u64,
}

/// The tool set: `echo`, `add`, `slow_count`.
#[derive(Debug, Clone)]
pub struct TestTools {
    tool_router: ToolRouter<Self>,
}

impl TestTools {
    /// A handler with all tools registered.
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

impl Default for TestTools {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_router]
impl TestTools {
    #[tool(description = "Returns `text` unchanged")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Returns a + b")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    /// With a `_meta.progressToken` the notifications are progress notifications,
    /// which rmcp routes onto this request's own SSE response; without one they are
    /// log messages, which a stateful session sends on its GET stream instead.
    #[tool(description = "Sends n progress notifications (or log messages) and then returns n")]
    async fn slow_count(
        &self,
        Parameters(SlowCountArgs { n, delay_ms }): Parameters<SlowCountArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<String, ErrorData> {
        let token = ctx.meta.get_progress_token();
        for i in 1..=n {
            if delay_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            }
            let sent = match &token {
                Some(token) => {
                    let param = ProgressNotificationParam::new(token.clone(), f64::from(i))
                        .with_total(f64::from(n))
                        .with_message(format!("count {i}"));
                    ctx.peer.notify_progress(param).await
                }
                None => log(&ctx, i).await,
            };
            sent.map_err(|e| ErrorData::internal_error(format!("notify: {e}"), None))?;
        }
        Ok(n.to_string())
    }
}

// Logging is deprecated by SEP-2577 but still what most servers send.
#[allow(deprecated)]
async fn log(ctx: &RequestContext<RoleServer>, i: u32) -> Result<(), rmcp::ServiceError> {
    let param = rmcp::model::LoggingMessageNotificationParam::new(
        rmcp::model::LoggingLevel::Info,
        serde_json::json!({ "count": i }),
    )
    .with_logger("slow_count");
    ctx.peer.notify_logging_message(param).await
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp-test-upstream",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Test upstream for mcpproxyd: echo, add, slow_count")
    }
}
