//! The command line: clap definitions of the client's global options and
//! subcommands, plus the value parsers that catch bad input before any
//! request is sent.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use hotswap_domain::trigger::MAX_HTTP_RATE_LIMIT;
use hotswap_domain::{
    DeploymentStrategy, EgressRule, EgressRuleInput, Runtime, TriggerType, VersionStatus,
};

/// The default API address (`hotswap server`'s default listener).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

const GLOBAL: &str = "Global options";

// Options shared by every client command. All are global, so they may be
// given before or after the subcommand. (Plain comments, not doc comments:
// clap would use a doc comment as the about text of the binary that
// flattens this.)
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Address of the HotSwap API.
    #[arg(long, global = true, help_heading = GLOBAL, env = "HOTSWAP_URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// API token, sent as `Authorization: Bearer TOKEN`.
    #[arg(long, global = true, help_heading = GLOBAL, env = "HOTSWAP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Output format: human tables, or the server's JSON for scripts.
    #[arg(short, long, global = true, help_heading = GLOBAL, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Whose functions to address (admins): adds `?owner=OWNER` to every
    /// function request and to `trigger list --function`, binds
    /// `trigger create` to that owner's function, and picks whose security
    /// groups `security-group create|list` and whose queues `queue …`
    /// address. Names are unique per owner; without it, your own.
    #[arg(long, global = true, help_heading = GLOBAL, env = "HOTSWAP_OWNER")]
    pub owner: Option<String>,
}

impl Default for ClientArgs {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            token: None,
            output: OutputFormat::Table,
            owner: None,
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables.
    #[default]
    Table,
    /// The API's JSON, pretty-printed, exactly as the server returned it.
    Json,
}

// The client's commands (plain comment for the same reason as above).
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Create, inspect, update, publish and delete functions.
    #[command(name = "fn", subcommand)]
    Function(FnCommand),

    /// Inspect and retire published versions.
    #[command(subcommand)]
    Version(VersionCommand),

    /// Manage aliases: named pointers to versions, optionally weighted.
    #[command(subcommand)]
    Alias(AliasCommand),

    /// Manage event triggers (HTTP routes, schedules, queues, streams).
    #[command(subcommand)]
    Trigger(TriggerCommand),

    /// Print a sample event of a trigger's shape, to pipe into `fn invoke`
    /// (no server needed).
    #[command(subcommand, after_help = EVENT_EXAMPLES)]
    Event(EventCommand),

    /// List and inspect runner nodes.
    Runners(RunnersArgs),

    /// Move an alias to a new version with a deployment strategy.
    #[command(after_help = DEPLOY_EXAMPLES)]
    Deploy(DeployArgs),

    /// List, inspect and cancel deployments.
    #[command(subcommand)]
    Deployments(DeploymentsCommand),

    /// Manage API tokens: create (admin), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),

    /// Manage subnets: the address ranges functions are placed in (admins
    /// create and delete them; everyone may use them).
    #[command(subcommand)]
    Subnet(SubnetCommand),

    /// Manage security groups: egress rules your functions add to the
    /// default egress.
    #[command(subcommand, name = "security-group", visible_alias = "sg")]
    SecurityGroup(SecurityGroupCommand),

    /// Send messages to your embedded queues, list them, purge them.
    #[command(subcommand)]
    Queue(QueueCommand),

    /// Show who the current token belongs to.
    Whoami,
}

// ---------------------------------------------------------------- functions

const FN_CREATE_EXAMPLES: &str = "\
Examples:
  hotswap fn create ./hello --runtime python311 --handler app.handler
  hotswap fn create ./build/api.zip --name api --runtime node20 --handler index.handler \\
      --memory 512 --timeout 10 --env STAGE=prod --tag team=web
  hotswap fn create ./rust-fn --runtime provided --handler bootstrap

PATH is a directory (zipped in memory; file modes are kept, so an executable
`bootstrap` stays executable; `.git` folders are skipped) or a ready-made .zip.";

/// Function commands.
#[derive(Debug, Clone, Subcommand)]
pub enum FnCommand {
    /// Create a function from a directory or a .zip file.
    #[command(after_help = FN_CREATE_EXAMPLES)]
    Create(FnCreateArgs),

    /// List functions.
    #[command(
        after_help = "Examples:\n  hotswap fn list\n  hotswap fn list --tag team=web --all\n  hotswap fn list --owner alice -o json"
    )]
    List(FnListArgs),

    /// Show one function.
    Get {
        /// Function name.
        name: String,
    },

    /// Change a function's configuration (only the options given change).
    #[command(
        after_help = "Examples:\n  hotswap fn update hello --memory 1024 --timeout 60\n  hotswap fn update hello --env STAGE=prod --env DEBUG=0   # replaces the whole environment"
    )]
    Update(FnUpdateArgs),

    /// Replace the code of $LATEST from a directory or a .zip file.
    #[command(after_help = "Example:\n  hotswap fn update-code hello ./hello")]
    UpdateCode {
        /// Function name.
        name: String,
        /// Directory or .zip file holding the code.
        path: PathBuf,
    },

    /// Delete a function with all its versions, aliases and triggers.
    Delete {
        /// Function name.
        name: String,
    },

    /// Publish $LATEST as a new immutable version.
    #[command(after_help = "Example:\n  hotswap fn publish hello --description \"faster resize\"")]
    Publish {
        /// Function name.
        name: String,
        /// Description of the new version.
        #[arg(long)]
        description: Option<String>,
    },

    /// List a function's versions ($LATEST first).
    Versions {
        /// Function name.
        name: String,
        #[command(flatten)]
        page: PageArgs,
    },

    /// Invoke a function synchronously and print its result.
    #[command(after_help = FN_INVOKE_HELP)]
    Invoke(FnInvokeArgs),

    /// Show a function's log lines, optionally following new ones.
    #[command(after_help = FN_LOGS_HELP)]
    Logs(FnLogsArgs),

    /// List a function's asynchronous invocations, newest first.
    #[command(
        after_help = "Examples:\n  hotswap fn invocations hello\n  hotswap fn invocations hello --status failed --all -o json"
    )]
    Invocations {
        /// Function name.
        name: String,
        /// Only those in this state: pending, running, succeeded or failed.
        #[arg(long, value_parser = parse_invocation_status)]
        status: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
}

const FN_INVOKE_HELP: &str = "\
Examples:
  hotswap fn invoke hello --payload '{\"name\": \"world\"}'
  hotswap fn invoke hello --qualifier prod --payload-file event.json --log-tail
  echo '{\"n\": 1}' | hotswap fn invoke hello
  hotswap fn invoke hello --full -o json | jq .requestId

The event is --payload, or the file --payload-file (`-` for stdin), or stdin
when it is not a terminal (empty stdin is `{}`), or `{}`. It must be JSON.

The function's payload goes to stdout (pretty-printed when it is JSON); a
summary (version, cold or warm start, duration, memory, request ID) goes to
stderr, followed by the last 4 KB of the invocation's log with --log-tail.
With --full, stdout shows the whole invocation result instead; with -o json,
stdout is always the whole invocation result as JSON.

Exit codes:
  0  the function succeeded
  1  the platform refused or failed the request (not found, 429 too many
     requests, 503 runtime unavailable, …) or could not be reached
  2  bad usage, e.g. a payload that is not JSON
  3  the function itself failed (it raised, timed out or crashed); the
     error type and message are printed on stderr";

const FN_LOGS_HELP: &str = "\
Examples:
  hotswap fn logs hello --since 10m
  hotswap fn logs hello --request-id 1f0c6a2e-5d4b-4c1e-9a8f-2b7c3d4e5f60
  hotswap fn logs hello --version 3 --limit 50 --follow
  hotswap fn logs hello -o json | jq -r .message

Each line is `TIMESTAMP [VERSION] REQUEST stream: message` (REQUEST is the
request ID's first 8 characters); with -o json, one JSON object per line.
--follow keeps polling every second for new lines until Ctrl-C.";

/// `hotswap fn invoke`.
#[derive(Debug, Clone, Args)]
pub struct FnInvokeArgs {
    /// Function name.
    pub name: String,

    /// Version number, alias or $LATEST [default: $LATEST].
    #[arg(long, value_name = "QUALIFIER", value_parser = parse_qualifier)]
    pub qualifier: Option<String>,

    /// The event, as JSON text.
    #[arg(long, value_name = "JSON", conflicts_with = "payload_file")]
    pub payload: Option<String>,

    /// Read the event from this file (`-` for stdin).
    #[arg(long, value_name = "PATH")]
    pub payload_file: Option<PathBuf>,

    /// Also print the last 4 KB of the invocation's log on stderr.
    #[arg(long)]
    pub log_tail: bool,

    /// Print the whole invocation result (timings, cold start, errors)
    /// instead of the function's payload.
    #[arg(long)]
    pub full: bool,
}

/// `hotswap fn logs`.
#[derive(Debug, Clone, Args)]
pub struct FnLogsArgs {
    /// Function name.
    pub name: String,

    /// Only the lines of this invocation.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,

    /// Only the lines of this version (a number or $LATEST).
    #[arg(long, value_parser = parse_version_ref)]
    pub version: Option<String>,

    /// Only lines from this long ago (`10m`, `1h30m`) or since this RFC 3339
    /// time (`2024-05-01T12:00:00Z`).
    #[arg(long, value_name = "DURATION|TIME", value_parser = parse_since)]
    pub since: Option<Since>,

    /// At most this many lines, the newest (with --follow: of the lines
    /// already there), 1-1000 [server default: 1000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,

    /// Keep polling every second for new lines, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
}

/// `--since`: a time, or a duration before now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    At(DateTime<Utc>),
    Ago(Duration),
}

impl Since {
    /// The time meant, relative to `now` for a duration.
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Since::At(t) => t,
            Since::Ago(d) => chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }
}

/// `hotswap fn create`.
#[derive(Debug, Clone, Args)]
pub struct FnCreateArgs {
    /// Directory or .zip file holding the code.
    pub path: PathBuf,

    /// Function name [default: the directory's (or zip file's) name].
    #[arg(long)]
    pub name: Option<String>,

    /// Runtime, case-insensitive (python311, node20, java21, provided, …).
    #[arg(long)]
    pub runtime: Runtime,

    /// Handler, e.g. `app.handler` (Python), `index.handler` (Node).
    #[arg(long)]
    pub handler: String,

    /// Memory in MB (128–10240, in 64 MB steps).
    #[arg(long, value_name = "MB")]
    pub memory: Option<u32>,

    /// Timeout in seconds (1–900).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,

    /// Environment variable; repeat for more.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,

    /// Layer to attach (in order); repeat for more.
    #[arg(long = "layer", value_name = "NAME")]
    pub layers: Vec<String>,

    /// Tag; repeat for more.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub tags: Vec<(String, String)>,

    /// Free-text description.
    #[arg(long)]
    pub description: Option<String>,

    /// Function (of yours) that receives asynchronous invocations whose
    /// attempts are all exhausted, e.g. `on-failure` or `on-failure:prod`.
    #[arg(long, value_name = "FUNCTION[:QUALIFIER]", value_parser = parse_dead_letter)]
    pub dead_letter: Option<String>,

    /// Subnet to place the function in (`vpcConfig.subnetIds`); repeat for
    /// more.
    #[arg(long = "subnet-id", value_name = "ID")]
    pub subnet_ids: Vec<String>,

    /// Security group whose egress rules the function gets
    /// (`vpcConfig.securityGroupIds`; needs a --subnet-id); repeat for more.
    #[arg(long = "security-group-id", value_name = "ID")]
    pub security_group_ids: Vec<String>,
}

/// `hotswap fn list`.
#[derive(Debug, Clone, Args)]
pub struct FnListArgs {
    /// Only functions of this owner (admin tokens).
    #[arg(long)]
    pub owner: Option<String>,

    /// Only functions with this tag key, or this tag key and value.
    #[arg(long, value_name = "KEY[=VALUE]", value_parser = parse_tag_filter)]
    pub tag: Option<String>,

    #[command(flatten)]
    pub page: PageArgs,
}

/// `hotswap fn update`.
#[derive(Debug, Clone, Args)]
pub struct FnUpdateArgs {
    /// Function name.
    pub name: String,

    /// New runtime.
    #[arg(long)]
    pub runtime: Option<Runtime>,

    /// New handler.
    #[arg(long)]
    pub handler: Option<String>,

    /// New memory size in MB.
    #[arg(long, value_name = "MB")]
    pub memory: Option<u32>,

    /// New timeout in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,

    /// Environment variable; when given, replaces the whole environment.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value, conflicts_with = "clear_env")]
    pub env: Vec<(String, String)>,

    /// Remove every environment variable.
    #[arg(long)]
    pub clear_env: bool,

    /// Layer; when given, replaces the whole layer list.
    #[arg(long = "layer", value_name = "NAME")]
    pub layers: Vec<String>,

    /// New description.
    #[arg(long)]
    pub description: Option<String>,

    /// Tag; when given, replaces all tags.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub tags: Vec<(String, String)>,

    /// New dead-letter target for exhausted asynchronous invocations.
    #[arg(long, value_name = "FUNCTION[:QUALIFIER]", value_parser = parse_dead_letter, conflicts_with = "clear_dead_letter")]
    pub dead_letter: Option<String>,

    /// Remove the dead-letter target.
    #[arg(long)]
    pub clear_dead_letter: bool,

    /// Subnet (`vpcConfig.subnetIds`); with --security-group-id, replaces
    /// the whole vpcConfig. Repeat for more.
    #[arg(long = "subnet-id", value_name = "ID", conflicts_with = "clear_vpc")]
    pub subnet_ids: Vec<String>,

    /// Security group (`vpcConfig.securityGroupIds`); with --subnet-id,
    /// replaces the whole vpcConfig. Repeat for more.
    #[arg(
        long = "security-group-id",
        value_name = "ID",
        conflicts_with = "clear_vpc"
    )]
    pub security_group_ids: Vec<String>,

    /// Take the function out of its subnets and groups (default egress).
    #[arg(long)]
    pub clear_vpc: bool,
}

// ----------------------------------------------------------------- versions

/// Version commands. VERSION is a number (`3` or `v3`) or `$LATEST` (also
/// written `latest`).
#[derive(Debug, Clone, Subcommand)]
pub enum VersionCommand {
    /// Show one version.
    #[command(
        after_help = "Examples:\n  hotswap version get hello 3\n  hotswap version get hello latest"
    )]
    Get {
        /// Function name.
        name: String,
        /// Version number, or $LATEST.
        #[arg(value_parser = parse_version_ref)]
        version: String,
    },

    /// Change a version's status.
    #[command(after_help = "Example:\n  hotswap version set-status hello 2 deprecated")]
    SetStatus {
        /// Function name.
        name: String,
        /// Version number.
        #[arg(value_parser = parse_version_ref)]
        version: String,
        /// Active, Deprecated or Archived (case-insensitive).
        status: VersionStatus,
    },

    /// Delete a published version.
    Delete {
        /// Function name.
        name: String,
        /// Version number.
        #[arg(value_parser = parse_version_ref)]
        version: String,
    },
}

// ------------------------------------------------------------------ aliases

/// Alias commands.
#[derive(Debug, Clone, Subcommand)]
pub enum AliasCommand {
    /// Create an alias.
    #[command(
        after_help = "Examples:\n  hotswap alias create hello prod --version 5\n  hotswap alias create hello prod --version 5 --weight 6=10   # 90% to v5, 10% to v6"
    )]
    Create {
        /// Function name.
        name: String,
        /// Alias name.
        alias: String,
        /// Primary version the alias points to.
        #[arg(long, value_name = "N")]
        version: u32,
        /// Traffic share of a version; repeat for more. The rest goes to --version.
        #[arg(long = "weight", value_name = "VERSION=PERCENT", value_parser = parse_weight)]
        weights: Vec<(u32, f64)>,
        /// Free-text description.
        #[arg(long)]
        description: Option<String>,
    },

    /// Show one alias.
    Get {
        /// Function name.
        name: String,
        /// Alias name.
        alias: String,
    },

    /// List a function's aliases.
    List {
        /// Function name.
        name: String,
        #[command(flatten)]
        page: PageArgs,
    },

    /// Change an alias (only the options given change).
    #[command(
        after_help = "Examples:\n  hotswap alias update hello prod --version 6\n  hotswap alias update hello prod --weight 7=25\n  hotswap alias update hello prod --clear-weights"
    )]
    Update {
        /// Function name.
        name: String,
        /// Alias name.
        alias: String,
        /// New primary version.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
        /// Traffic share of a version; replaces the routing configuration.
        #[arg(long = "weight", value_name = "VERSION=PERCENT", value_parser = parse_weight, conflicts_with = "clear_weights")]
        weights: Vec<(u32, f64)>,
        /// Send all traffic to the primary version.
        #[arg(long)]
        clear_weights: bool,
        /// New description.
        #[arg(long)]
        description: Option<String>,
    },

    /// Delete an alias.
    Delete {
        /// Function name.
        name: String,
        /// Alias name.
        alias: String,
    },
}

// ----------------------------------------------------------------- triggers

const TRIGGER_CREATE_EXAMPLES: &str = "\
Examples:
  hotswap trigger create hello --type http --path /hello --method GET --method POST --cors
  hotswap trigger create orders --type http --path /orders/{id} --auth token --rate-limit 100 \\
      --cors-origin https://shop.example.com
  hotswap trigger create report --type scheduled --schedule \"cron(0 8 * * ? *)\" --timezone Europe/Paris
  hotswap trigger create ping --type scheduled --schedule \"rate(30 seconds)\"
  hotswap --owner alice trigger create hello --type http --path /hello   # admin: alice's function
  hotswap trigger create worker --type queue --queue jobs --batch-size 10 --visibility-timeout 60
  hotswap trigger create indexer --type stream --stream orders --starting-position LATEST";

/// Trigger commands.
#[derive(Debug, Clone, Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger for a function.
    #[command(after_help = TRIGGER_CREATE_EXAMPLES)]
    Create(Box<TriggerCreateArgs>),

    /// List triggers.
    List {
        /// Only the triggers of this function.
        #[arg(long = "function", value_name = "NAME")]
        function: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },

    /// Show one trigger.
    Get {
        /// Trigger ID.
        id: String,
    },

    /// Enable a trigger.
    Enable {
        /// Trigger ID.
        id: String,
    },

    /// Disable a trigger (it keeps its configuration).
    Disable {
        /// Trigger ID.
        id: String,
    },

    /// Delete a trigger.
    Delete {
        /// Trigger ID.
        id: String,
    },
}

/// `hotswap trigger create`.
#[derive(Debug, Clone, Args)]
pub struct TriggerCreateArgs {
    /// Function name.
    pub name: String,

    /// Trigger type: http, scheduled, queue or stream.
    #[arg(long = "type", value_name = "TYPE")]
    pub trigger_type: TriggerType,

    /// What to invoke: a version number, an alias or $LATEST [server default: $LATEST].
    #[arg(long, value_name = "QUALIFIER", value_parser = parse_qualifier)]
    pub target_version: Option<String>,

    /// HTTP: the route, served at /fn/PATH.
    #[arg(long, help_heading = "HTTP")]
    pub path: Option<String>,

    /// HTTP: an accepted method; repeat for more.
    #[arg(long = "method", value_name = "METHOD", help_heading = "HTTP")]
    pub methods: Vec<String>,

    /// HTTP: answer CORS preflights and add CORS headers.
    #[arg(long, help_heading = "HTTP")]
    pub cors: bool,

    /// HTTP: an origin allowed by CORS (implies --cors; default `*`); repeat
    /// for more.
    #[arg(long = "cors-origin", value_name = "ORIGIN", help_heading = "HTTP")]
    pub cors_origins: Vec<String>,

    /// HTTP: who may call it: `none` (public, default) or `token` (the
    /// owner's API token, as `Authorization: Bearer`).
    #[arg(long, value_enum, value_name = "AUTH", help_heading = "HTTP")]
    pub auth: Option<HttpAuth>,

    /// HTTP: most requests per second admitted (429 past it).
    #[arg(long, value_name = "N", help_heading = "HTTP",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_HTTP_RATE_LIMIT)))]
    pub rate_limit: Option<u32>,

    /// Scheduled: `rate(5 minutes)`, `rate(30 seconds)`, `cron(…)` (6 AWS
    /// fields) or `at(2031-01-01T09:00:00)`.
    #[arg(long, value_name = "EXPRESSION", help_heading = "Scheduled")]
    pub schedule: Option<String>,

    /// Scheduled: IANA time zone of a cron or at expression, e.g.
    /// Europe/Paris [server default: UTC].
    #[arg(long, help_heading = "Scheduled")]
    pub timezone: Option<String>,

    /// Queue: queue name.
    #[arg(long, value_name = "NAME", help_heading = "Queue")]
    pub queue: Option<String>,

    /// Queue, Stream: where to read: embedded (HotSwap's queue, the
    /// default for queues), rabbitmq, nats, redis (the server needs the
    /// broker's URL flag).
    #[arg(long, value_name = "SOURCE", help_heading = "Queue and Stream")]
    pub source: Option<String>,

    /// Queue, Stream: messages or records per invocation [server default:
    /// 10 for queues, 100 for streams].
    #[arg(long, value_name = "N", help_heading = "Queue and Stream")]
    pub batch_size: Option<u32>,

    /// Queue, Stream: have the function's `batchItemFailures` answer retry
    /// only the items it lists.
    #[arg(long, help_heading = "Queue and Stream")]
    pub report_batch_item_failures: bool,

    /// Queue: seconds a received message stays invisible (at least the
    /// function's timeout).
    #[arg(long, value_name = "SECONDS", help_heading = "Queue")]
    pub visibility_timeout: Option<u32>,

    /// Queue: seconds to wait for a batch to fill (0-300).
    #[arg(long, value_name = "SECONDS", help_heading = "Queue")]
    pub batching_window: Option<u32>,

    /// Queue: receives after which a failing message is dead-lettered
    /// [server default: 3].
    #[arg(long, value_name = "N", help_heading = "Queue")]
    pub max_receive_count: Option<u32>,

    /// Queue: most concurrent batches (2-1000; never past the function's
    /// maxInstances).
    #[arg(long, value_name = "N", help_heading = "Queue")]
    pub maximum_concurrency: Option<u32>,

    /// Queue: where dead messages go: fn:NAME[:QUALIFIER] or queue:NAME.
    #[arg(long, value_name = "TARGET", help_heading = "Queue")]
    pub dead_letter_target: Option<String>,

    /// Stream: stream name or ARN.
    #[arg(long, value_name = "STREAM", help_heading = "Stream")]
    pub stream: Option<String>,

    /// Stream: TRIM_HORIZON, LATEST or AT_TIMESTAMP.
    #[arg(long, value_name = "POSITION", help_heading = "Stream")]
    pub starting_position: Option<String>,

    /// Stream: the time AT_TIMESTAMP starts at (RFC 3339).
    #[arg(long, value_name = "TIME", help_heading = "Stream")]
    pub starting_position_timestamp: Option<String>,

    /// Stream: concurrent batches per shard (1-10), in order per
    /// partition key.
    #[arg(long = "parallelization", value_name = "N", help_heading = "Stream")]
    pub parallelization: Option<u32>,

    /// Stream: split a failing batch in two and retry the halves.
    #[arg(long, help_heading = "Stream")]
    pub bisect_on_error: bool,

    /// Stream: retries of a failing batch (-1: until its records expire).
    #[arg(
        long,
        value_name = "N",
        allow_hyphen_values = true,
        help_heading = "Stream"
    )]
    pub maximum_retry_attempts: Option<i32>,

    /// Stream: oldest record sent, seconds (-1: no limit).
    #[arg(
        long,
        value_name = "SECONDS",
        allow_hyphen_values = true,
        help_heading = "Stream"
    )]
    pub maximum_record_age: Option<i32>,

    /// Stream: where records given up on are described: fn:NAME or
    /// queue:NAME.
    #[arg(long, value_name = "TARGET", help_heading = "Stream")]
    pub on_failure: Option<String>,

    /// Create the trigger disabled.
    #[arg(long)]
    pub disabled: bool,
}

/// `--auth` of an HTTP trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HttpAuth {
    /// Public: anyone with the URL.
    None,
    /// The function's owner (or an admin), with `Authorization: Bearer TOKEN`.
    Token,
}

impl HttpAuth {
    /// As the API spells it (`authType`).
    pub fn as_api(self) -> &'static str {
        match self {
            HttpAuth::None => "None",
            HttpAuth::Token => "Token",
        }
    }
}

// ------------------------------------------------------------------- events

const EVENT_EXAMPLES: &str = "\
Examples:
  hotswap event http --method POST --path /orders --body '{\"id\": 1}' | hotswap fn invoke orders
  hotswap event schedule | hotswap fn invoke report
  hotswap event sqs --body '{\"job\": 1}' --body '{\"job\": 2}' --queue jobs | hotswap fn invoke worker
  hotswap event kinesis --data hello --stream orders > event.json

The event is printed as JSON on stdout; `fn invoke` reads it from stdin.";

/// `hotswap event …`: sample events, like `sam local generate-event`.
#[derive(Debug, Clone, Subcommand)]
pub enum EventCommand {
    /// An HTTP request (API Gateway HTTP API payload 2.0, as HTTP triggers
    /// deliver).
    Http {
        /// Request method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Request path, optionally with a query string (`/orders?status=open`).
        #[arg(long, default_value = "/")]
        path: String,
        /// Request body.
        #[arg(long)]
        body: Option<String>,
    },
    /// A schedule tick (the EventBridge "Scheduled Event").
    Schedule,
    /// An SQS batch, one record per --body.
    Sqs {
        /// A message body; repeat for more [default: one sample message].
        #[arg(long = "body", value_name = "BODY")]
        bodies: Vec<String>,
        /// Queue name (or ARN).
        #[arg(long, default_value = "sample-queue")]
        queue: String,
    },
    /// A Kinesis batch, one record per --data.
    Kinesis {
        /// A record's data (sent base64-encoded); repeat for more
        /// [default: one sample record].
        #[arg(long = "data", value_name = "DATA")]
        records: Vec<String>,
        /// Partition key of the records.
        #[arg(long, default_value = "partition-1")]
        partition_key: String,
        /// Stream name (or ARN).
        #[arg(long, default_value = "sample-stream")]
        stream: String,
    },
}

// ------------------------------------------------------------------ runners

/// `hotswap runners [list|get]`.
#[derive(Debug, Clone, Args)]
pub struct RunnersArgs {
    #[command(subcommand)]
    pub command: Option<RunnersCommand>,
}

/// Runner commands; `hotswap runners` alone lists them.
#[derive(Debug, Clone, Subcommand)]
pub enum RunnersCommand {
    /// List runner nodes (the default).
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one runner node.
    Get {
        /// Node ID.
        node_id: String,
    },
}

// -------------------------------------------------------------- deployments

const DEPLOY_EXAMPLES: &str = "\
Examples:
  hotswap deploy hello --alias prod --version 6 --strategy all-at-once
  hotswap deploy hello --alias prod --version 6 --strategy canary \\
      --canary-percent 10 --canary-duration 5m --rollback-error-rate 5
  hotswap deploy hello --alias prod --version 6 --strategy canary --canary-increments 10,25,50
  hotswap deploy hello --alias prod --version 6 --strategy blue-green --test-duration 2m --keep-blue

Durations are seconds (`300`) or text (`5m`, `1h30m`, `00:05:00`). Rates are
percentages (0–100); --rollback-latency-p99 is milliseconds.";

/// `hotswap deploy`.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// Function name.
    pub name: String,

    /// Alias to move.
    #[arg(long)]
    pub alias: String,

    /// Version to deploy.
    #[arg(long, value_name = "N")]
    pub version: u32,

    /// all-at-once, canary, blue-green, rolling or ab-testing (case-insensitive).
    #[arg(long, default_value = "AllAtOnce")]
    pub strategy: DeploymentStrategy,

    /// Canary: percent of traffic for the new version at the first step.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub canary_percent: Option<f64>,

    /// Canary: how long each step lasts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
    pub canary_duration: Option<f64>,

    /// Canary: traffic percentages of the successive steps.
    #[arg(long, value_name = "P,P,…", value_delimiter = ',', value_parser = parse_percent)]
    pub canary_increments: Vec<f64>,

    /// Blue-green: how long to test the green version before switching.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
    pub test_duration: Option<f64>,

    /// Blue-green: keep the blue version's instances after the switch.
    #[arg(long)]
    pub keep_blue: bool,

    /// Rolling: fraction (0 < x ≤ 1) or count (≥ 1) of runner nodes per batch.
    #[arg(long, value_name = "X", value_parser = parse_positive)]
    pub batch_size: Option<f64>,

    /// Rolling: how long each batch lasts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
    pub batch_duration: Option<f64>,

    /// Roll back when the error rate exceeds this percentage.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub rollback_error_rate: Option<f64>,

    /// Roll back when p99 latency exceeds this many milliseconds.
    #[arg(long = "rollback-latency-p99", value_name = "MS", value_parser = parse_positive)]
    pub rollback_latency_p99: Option<f64>,

    /// Roll back when the success rate falls below this percentage.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub rollback_success_rate: Option<f64>,

    /// Keep watching this long once all traffic is on the new version.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
    pub bake_duration: Option<f64>,

    /// Invocations of the new version a step needs before its metrics count.
    #[arg(long, value_name = "N")]
    pub min_invocations: Option<u64>,

    /// Print the new deployment and return at once instead of following it.
    #[arg(long)]
    pub no_wait: bool,
}

/// Deployment commands.
#[derive(Debug, Clone, Subcommand)]
pub enum DeploymentsCommand {
    /// List a function's deployments.
    List {
        /// Function name.
        name: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one deployment.
    Get {
        /// Function name.
        name: String,
        /// Deployment ID.
        id: String,
    },
    /// Cancel a deployment that has not finished (traffic goes back to the source).
    Cancel {
        /// Function name.
        name: String,
        /// Deployment ID.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// End the current step now (ABTesting's split, a manual gate, or the
    /// rest of a timed step).
    Promote {
        /// Function name.
        name: String,
        /// Deployment ID.
        id: String,
    },
    /// Move all traffic back to the source version now.
    Rollback {
        /// Function name.
        name: String,
        /// Deployment ID.
        id: String,
        /// Why (recorded as the rollback reason).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Follow a deployment's progress until it ends (exit 4 unless it completes).
    Watch {
        /// Function name.
        name: String,
        /// Deployment ID.
        id: String,
    },
}

// ------------------------------------------------------------------- tokens

/// Token commands.
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Create an API token (needs an admin token). The secret is shown once.
    #[command(after_help = "Examples:\n  \
        export HOTSWAP_TOKEN=$(hotswap token create alice -o json | jq -r .token)\n  \
        hotswap token create alice --name ci --expires-in 30d\n  \
        hotswap token create --role metrics --name prometheus   # reads /metrics, nothing else")]
    Create {
        /// Owner (tenant) the token acts as; required for tenant tokens
        /// (admin and metrics tokens default to `admin` and `metrics`).
        owner: Option<String>,
        /// Give the token admin rights (same as `--role admin`).
        #[arg(long, conflicts_with = "role")]
        admin: bool,
        /// What the token may do: `tenant` (default), `admin`, or `metrics`
        /// (reads /metrics and nothing else).
        #[arg(long, value_parser = ["tenant", "admin", "runner", "metrics"])]
        role: Option<String>,
        /// A label to recognise it by in `token list` (1-64 characters).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. `30d`, `12h`, `3600` (seconds); refused after it.
        #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// Expiry instant, RFC 3339 (`2030-01-31T00:00:00Z`).
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// List tokens (never their secrets): an admin sees all, a tenant its own.
    List {
        /// Only this owner's tokens.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one token.
    Get {
        /// Token ID (`tokenId`, from `token list`).
        id: String,
    },
    /// Revoke a token: refused from then on (by other servers sharing the
    /// database within 30 s, their token cache's lifetime).
    Revoke {
        /// Token ID (`tokenId`, from `token list`).
        id: String,
    },
}

// ---------------------------------------------------------------- networking

/// Subnet commands.
#[derive(Debug, Clone, Subcommand)]
pub enum SubnetCommand {
    /// Create a subnet (admin tokens): a private block, /16 to /28.
    #[command(after_help = "Example:\n  hotswap subnet create app --cidr 10.20.0.0/24")]
    Create {
        /// Name: letters, digits and '-', at most 64.
        name: String,
        /// A private block (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or
        /// 100.64.0.0/10), /16 to /28, overlapping no other subnet.
        #[arg(long)]
        cidr: String,
    },
    /// List subnets.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one subnet.
    Get {
        /// Subnet ID (`subnet-…`).
        id: String,
    },
    /// Delete a subnet (admin tokens); refused while a function uses it.
    Delete {
        /// Subnet ID (`subnet-…`).
        id: String,
    },
}

const RULE_HELP: &str = "\
RULE is PROTO[:PORTS]:DEST: PROTO is tcp, udp or all; PORTS (tcp and udp only)
a port or FROM-TO; DEST a CIDR block or `host` (the runner's machine, reached
from the function as host.hotswap.internal).

Examples:
  hotswap security-group create db --egress tcp:5432:host
  hotswap security-group create internal --egress tcp:8000-8100:10.0.0.0/8 --egress all:10.1.0.0/16
  hotswap security-group update sg-0123456789abcdef0 --egress udp:53:10.0.0.2/32";

/// Security group commands.
#[derive(Debug, Clone, Subcommand)]
pub enum SecurityGroupCommand {
    /// Create a security group (yours; an admin may add --owner).
    #[command(after_help = RULE_HELP)]
    Create {
        /// Name: letters, digits and '-', at most 64; unique per owner.
        name: String,
        /// Egress rule (PROTO[:PORTS]:DEST); repeat for more.
        #[arg(long = "egress", value_name = "RULE", value_parser = parse_egress_rule)]
        egress: Vec<EgressRule>,
    },
    /// List your security groups (an admin: every owner's, or --owner's).
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one security group.
    Get {
        /// Security group ID (`sg-…`).
        id: String,
    },
    /// Rename a group or replace its rules (what is not given is kept).
    #[command(after_help = RULE_HELP)]
    Update {
        /// Security group ID (`sg-…`).
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// Egress rule (PROTO[:PORTS]:DEST); when given, replaces every
        /// rule. Repeat for more.
        #[arg(long = "egress", value_name = "RULE", value_parser = parse_egress_rule, conflicts_with = "clear_egress")]
        egress: Vec<EgressRule>,
        /// Remove every rule.
        #[arg(long)]
        clear_egress: bool,
    },
    /// Delete a security group; refused while a function uses it.
    Delete {
        /// Security group ID (`sg-…`).
        id: String,
    },
}

/// `PROTO[:PORTS]:DEST`, e.g. `tcp:5432:host`, `tcp:8000-8100:10.0.0.0/8`,
/// `all:10.1.0.0/16`: PROTO is `tcp`, `udp` or `all` (any case), PORTS a
/// port or a range (tcp and udp only), DEST a CIDR block or `host`.
pub fn parse_egress_rule(s: &str) -> Result<EgressRule, String> {
    let (protocol, ports, dest) = match s.split(':').collect::<Vec<_>>().as_slice() {
        [p, d] => (*p, None, *d),
        [p, ports, d] => (*p, Some(*ports), *d),
        _ => {
            return Err(format!(
            "invalid rule '{s}': expected PROTO[:PORTS]:DEST, e.g. tcp:5432:host or all:10.0.0.0/8"
        ))
        }
    };
    let host = dest.eq_ignore_ascii_case("host");
    let input = EgressRuleInput {
        protocol: protocol.to_owned(),
        ports: ports.map(str::to_owned),
        cidr: (!host).then(|| dest.to_owned()),
        host,
    };
    input.parse(0).map_err(|e| {
        let why: Vec<&str> = e
            .messages()
            .iter()
            .map(|m| {
                m.strip_prefix("egress[0].")
                    .or_else(|| m.strip_prefix("egress[0]: "))
                    .unwrap_or(m)
            })
            .collect();
        format!("invalid rule '{s}': {}", why.join("; "))
    })
}

// ------------------------------------------------------------------- queues

const QUEUE_SEND_EXAMPLES: &str = "\
Examples:
  hotswap queue send orders '{\"orderId\": 42}'
  hotswap queue send orders --file order.json --attribute source=web --attribute trace=abc
  echo hello | hotswap queue send orders --file -

The queue is created by its first message. The body is sent as text, as
given (at most 256 KiB with the attributes).";

/// Embedded queue commands (your queues; an admin may add --owner).
#[derive(Debug, Clone, Subcommand)]
pub enum QueueCommand {
    /// Send a message; prints its messageId.
    #[command(after_help = QUEUE_SEND_EXAMPLES)]
    Send {
        /// Queue name: 1-80 letters, digits, '-' or '_'.
        name: String,
        /// The message body (or give --file).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        body: Option<String>,
        /// Read the body from this file (`-`: stdin).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// A message attribute NAME=VALUE; repeat for more (at most 10).
        #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = parse_key_value)]
        attributes: Vec<(String, String)>,
    },
    /// List your queues with their depth.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one queue.
    Get {
        /// Queue name.
        name: String,
    },
    /// Delete every message of a queue (received ones too).
    Purge {
        /// Queue name.
        name: String,
    },
}

// ------------------------------------------------------------------- paging

/// Paging options of list commands.
#[derive(Debug, Clone, Default, Args)]
pub struct PageArgs {
    /// At most this many items per page.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,

    /// Continue from a previous page's `nextToken`.
    #[arg(long, value_name = "TOKEN")]
    pub next_token: Option<String>,

    /// Fetch every page.
    #[arg(long, conflicts_with = "next_token")]
    pub all: bool,
}

// ------------------------------------------------------------ value parsers

/// `KEY=VALUE`: the key is non-empty and has no whitespace or `=`; the value
/// may be empty and may contain `=`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid KEY=VALUE '{s}': no '=' found"))?;
    check_key(key, s)?;
    Ok((key.to_owned(), value.to_owned()))
}

fn check_key(key: &str, whole: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err(format!("invalid KEY=VALUE '{whole}': empty key"));
    }
    if key.chars().any(char::is_whitespace) {
        return Err(format!(
            "invalid KEY=VALUE '{whole}': the key must not contain whitespace"
        ));
    }
    Ok(())
}

/// A tag filter: `KEY` or `KEY=VALUE`, passed to the server as is.
/// `FUNCTION[:QUALIFIER]`, checked with the server's name and qualifier rules.
pub fn parse_dead_letter(s: &str) -> Result<String, String> {
    s.parse::<hotswap_domain::DeadLetterTarget>()
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

/// An asynchronous invocation state, case-insensitive, as the API spells it.
pub fn parse_invocation_status(s: &str) -> Result<String, String> {
    ["Pending", "Running", "Succeeded", "Failed"]
        .into_iter()
        .find(|v| v.eq_ignore_ascii_case(s))
        .map(str::to_owned)
        .ok_or_else(|| format!("'{s}' is not one of pending, running, succeeded, failed"))
}

pub fn parse_tag_filter(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((key, _)) => check_key(key, s)?,
        None => check_key(s, s)?,
    }
    Ok(s.to_owned())
}

/// `VERSION=PERCENT`: a published version number (`6` or `v6`) and a
/// traffic percentage in 0–100.
pub fn parse_weight(s: &str) -> Result<(u32, f64), String> {
    let (v, p) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid weight '{s}': expected VERSION=PERCENT, e.g. 6=10"))?;
    let digits = v.trim().strip_prefix('v').unwrap_or(v.trim());
    let version: u32 =
        digits.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            format!("invalid weight '{s}': '{v}' is not a published version number")
        })?;
    let percent = parse_percent(p.trim().trim_end_matches('%'))
        .map_err(|e| format!("invalid weight '{s}': {e}"))?;
    Ok((version, percent))
}

/// A percentage in 0–100.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !p.is_finite() || !(0.0..=100.0).contains(&p) {
        return Err(format!("{s} is not a percentage between 0 and 100"));
    }
    Ok(p)
}

/// A number greater than 0.
pub fn parse_positive(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !x.is_finite() || x <= 0.0 {
        return Err(format!("{s} must be greater than 0"));
    }
    Ok(x)
}

/// A duration (`300`, `5m`, `1h30m`, `00:05:00`) as seconds.
pub fn parse_duration_secs(s: &str) -> Result<f64, String> {
    hotswap_domain::duration::parse_duration(s).map(|d| d.as_secs_f64())
}

/// A version reference as the API path wants it: `3` (also `v3`) or `$LATEST`
/// (also `latest`, which needs no shell quoting).
pub fn parse_version_ref(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t == hotswap_domain::LATEST || t.eq_ignore_ascii_case("latest") {
        return Ok(hotswap_domain::LATEST.to_owned());
    }
    let digits = t.strip_prefix('v').unwrap_or(t);
    match digits.parse::<u32>() {
        Ok(0) => Ok(hotswap_domain::LATEST.to_owned()),
        Ok(n) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(n.to_string())
        }
        _ => Err(format!(
            "invalid version '{s}': expected a version number or $LATEST"
        )),
    }
}

/// `--since`: an RFC 3339 time, or a duration before now (`10m`, `90`,
/// `1h30m`, `00:10:00`).
pub fn parse_since(s: &str) -> Result<Since, String> {
    let t = s.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(t) {
        return Ok(Since::At(time.with_timezone(&Utc)));
    }
    hotswap_domain::duration::parse_duration(t)
        .map(Since::Ago)
        .map_err(|_| {
            format!("invalid --since '{s}': expected a duration such as 10m or 1h30m, or an RFC 3339 time such as 2024-05-01T12:00:00Z")
        })
}

/// A qualifier: a version number, an alias name or `$LATEST`.
pub fn parse_qualifier(s: &str) -> Result<String, String> {
    s.parse::<hotswap_domain::Qualifier>()
        .map(|q| q.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The binary's shape: global client options, a `server` subcommand of
    /// its own, and the client commands flattened beside it.
    #[derive(Debug, Parser)]
    #[command(name = "hotswap", version)]
    struct TestCli {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: TestCmd,
    }

    #[derive(Debug, Subcommand)]
    enum TestCmd {
        Server {
            #[arg(long)]
            listen: Option<String>,
        },
        // Boxed: `Command` is much larger than a typical `server` variant.
        #[command(flatten)]
        Client(Box<Command>),
    }

    fn parse(args: &[&str]) -> Result<TestCli, clap::Error> {
        TestCli::try_parse_from(std::iter::once("hotswap").chain(args.iter().copied()))
    }

    fn client_cmd(args: &[&str]) -> Command {
        match parse(args).unwrap().cmd {
            TestCmd::Client(c) => *c,
            other => panic!("not a client command: {other:?}"),
        }
    }

    #[test]
    fn command_definition_is_valid() {
        TestCli::command().debug_assert();
        // And on its own, as a subcommand set.
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        ClientArgs::augment_args(cmd).debug_assert();
    }

    #[test]
    fn key_value_parsing() {
        assert_eq!(parse_key_value("A=1").unwrap(), ("A".into(), "1".into()));
        assert_eq!(parse_key_value("A=").unwrap(), ("A".into(), "".into()));
        assert_eq!(
            parse_key_value("URL=http://x/?a=b").unwrap(),
            ("URL".into(), "http://x/?a=b".into())
        );
        assert!(parse_key_value("A").unwrap_err().contains("no '='"));
        assert!(parse_key_value("=1").unwrap_err().contains("empty key"));
        assert!(parse_key_value("A B=1").unwrap_err().contains("whitespace"));
        assert_eq!(parse_tag_filter("team").unwrap(), "team");
        assert_eq!(parse_tag_filter("team=web").unwrap(), "team=web");
        assert!(parse_tag_filter("=web").is_err());
    }

    #[test]
    fn weight_parsing() {
        assert_eq!(parse_weight("6=10").unwrap(), (6, 10.0));
        assert_eq!(parse_weight("v6=12.5%").unwrap(), (6, 12.5));
        assert!(parse_weight("6").unwrap_err().contains("VERSION=PERCENT"));
        assert!(parse_weight("0=10").unwrap_err().contains("version number"));
        assert!(parse_weight("prod=10")
            .unwrap_err()
            .contains("version number"));
        assert!(parse_weight("6=101")
            .unwrap_err()
            .contains("between 0 and 100"));
        assert!(parse_weight("6=-1").is_err());
        assert!(parse_weight("6=ten").unwrap_err().contains("not a number"));
    }

    #[test]
    fn version_and_qualifier_parsing() {
        assert_eq!(parse_version_ref("3").unwrap(), "3");
        assert_eq!(parse_version_ref("v3").unwrap(), "3");
        assert_eq!(parse_version_ref("latest").unwrap(), "$LATEST");
        assert_eq!(parse_version_ref("$LATEST").unwrap(), "$LATEST");
        assert!(parse_version_ref("prod").is_err());
        assert!(parse_version_ref("-1").is_err());
        assert_eq!(parse_qualifier("prod").unwrap(), "prod");
        assert_eq!(parse_qualifier("v2").unwrap(), "2");
        assert!(parse_qualifier("bad name").is_err());
    }

    #[test]
    fn since_parsing() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_since("10m").unwrap(),
            Since::Ago(Duration::from_secs(600))
        );
        assert_eq!(
            parse_since("10m").unwrap().resolve(now).to_rfc3339(),
            "2024-05-01T11:50:00+00:00"
        );
        assert_eq!(
            parse_since("1h30m").unwrap().resolve(now).to_rfc3339(),
            "2024-05-01T10:30:00+00:00"
        );
        let at = parse_since("2024-04-30T10:00:00.5+02:00").unwrap();
        assert_eq!(
            at.resolve(now).to_rfc3339(),
            "2024-04-30T08:00:00.500+00:00"
        );
        assert!(parse_since("yesterday-ish")
            .unwrap_err()
            .contains("invalid --since"));
        assert!(parse_since("2024-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn invoke_and_logs_arguments() {
        match client_cmd(&[
            "fn",
            "invoke",
            "hello",
            "--qualifier",
            "v2",
            "--payload",
            r#"{"a":1}"#,
            "--log-tail",
        ]) {
            Command::Function(FnCommand::Invoke(a)) => {
                assert_eq!(a.name, "hello");
                assert_eq!(a.qualifier.as_deref(), Some("2"));
                assert_eq!(a.payload.as_deref(), Some(r#"{"a":1}"#));
                assert!(a.log_tail && !a.full);
                assert_eq!(a.payload_file, None);
            }
            other => panic!("{other:?}"),
        }
        match client_cmd(&["fn", "invoke", "hello", "--payload-file", "-", "--full"]) {
            Command::Function(FnCommand::Invoke(a)) => {
                assert_eq!(a.payload_file, Some(PathBuf::from("-")));
                assert!(a.full && a.qualifier.is_none());
            }
            other => panic!("{other:?}"),
        }
        match client_cmd(&[
            "fn",
            "logs",
            "hello",
            "--request-id",
            "r1",
            "--version",
            "latest",
            "--since",
            "5m",
            "--limit",
            "20",
            "-f",
        ]) {
            Command::Function(FnCommand::Logs(a)) => {
                assert_eq!(a.request_id.as_deref(), Some("r1"));
                assert_eq!(a.version.as_deref(), Some("$LATEST"));
                assert_eq!(a.since, Some(Since::Ago(Duration::from_secs(300))));
                assert_eq!(a.limit, Some(20));
                assert!(a.follow);
            }
            other => panic!("{other:?}"),
        }
        match client_cmd(&["fn", "logs", "hello"]) {
            Command::Function(FnCommand::Logs(a)) => {
                assert!(a.request_id.is_none() && a.since.is_none() && !a.follow);
            }
            other => panic!("{other:?}"),
        }
        for args in [
            &[
                "fn",
                "invoke",
                "f",
                "--payload",
                "{}",
                "--payload-file",
                "x",
            ][..],
            &["fn", "invoke", "f", "--qualifier", "bad name"],
            &["fn", "logs", "f", "--limit", "0"],
            &["fn", "logs", "f", "--since", "soon"],
            &["fn", "logs", "f", "--version", "prod"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }

    #[test]
    fn durations_and_percentages() {
        assert_eq!(parse_duration_secs("5m").unwrap(), 300.0);
        assert_eq!(parse_duration_secs("90").unwrap(), 90.0);
        assert!(parse_duration_secs("soon").is_err());
        assert!(parse_percent("100").is_ok());
        assert!(parse_percent("100.1").is_err());
        assert!(parse_positive("0").is_err());
    }

    #[test]
    fn parses_a_full_command_line() {
        let cli = parse(&[
            "--url",
            "http://h:1",
            "fn",
            "create",
            "./hello",
            "--runtime",
            "PYTHON311",
            "--handler",
            "app.handler",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.client.url, "http://h:1");
        assert_eq!(cli.client.output, OutputFormat::Json);
        match cli.cmd {
            TestCmd::Client(c) if matches!(*c, Command::Function(FnCommand::Create(_))) => {
                let Command::Function(FnCommand::Create(a)) = *c else {
                    unreachable!()
                };
                assert_eq!(a.runtime, Runtime::Python311);
                assert_eq!(a.env.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            client_cmd(&["runners"]),
            Command::Runners(RunnersArgs { command: None })
        ));
        match client_cmd(&[
            "deploy",
            "f",
            "--alias",
            "prod",
            "--version",
            "2",
            "--strategy",
            "blue-green",
            "--canary-increments",
            "10,25,50",
        ]) {
            Command::Deploy(d) => {
                assert_eq!(d.strategy, DeploymentStrategy::BlueGreen);
                assert_eq!(d.canary_increments, vec![10.0, 25.0, 50.0]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["server", "--listen", "x"]).unwrap().cmd,
            TestCmd::Server { .. }
        ));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["fn", "create", "d", "--runtime", "cobol", "--handler", "h"][..],
            &[
                "fn",
                "create",
                "d",
                "--runtime",
                "node20",
                "--handler",
                "h",
                "--env",
                "NOEQUALS",
            ],
            &[
                "deploy",
                "f",
                "--alias",
                "a",
                "--version",
                "1",
                "--strategy",
                "yolo",
            ],
            &[
                "alias",
                "create",
                "f",
                "a",
                "--version",
                "1",
                "--weight",
                "2=200",
            ],
            &["trigger", "create", "f", "--type", "carrier-pigeon"],
            &["version", "set-status", "f", "1", "retired"],
            &["--output", "yaml", "whoami"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }
}
