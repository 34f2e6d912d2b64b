//! `caravan demo`: the whole platform on one machine. A server with its own data directory,
//! one agent per simulated host (two hosts in each of two production data centers, one staging
//! host), the example schema, two tenants, a sample service over both production data centers
//! and a log generator. The first run in a directory sets everything up; a later run resumes.
//! Ctrl-C (or SIGTERM) stops everything it started.

mod loggen;
mod processes;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use caravan_client::Client;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::DemoArgs;
use processes::Managed;

/// How long hosts may take to register, and the service to run.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an agent may take to stop its instances, and the server to finish.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Ports per agent.
const PORTS_PER_AGENT: u16 = 20;
/// The agents' heartbeat interval (the server's default timeout is 5 s).
const HEARTBEAT_MS: &str = "500";

/// What the demo started, stopped in reverse order.
#[derive(Default)]
struct Started {
    server: Option<Managed>,
    agents: Vec<(Managed, PathBuf)>,
    load_balancer: Option<Managed>,
    generator: Option<tokio::task::JoinHandle<()>>,
}

impl Started {
    /// Stops the generator, the load balancer, the agents (in parallel: each stops its
    /// instances), then the server.
    async fn stop(&mut self) {
        if let Some(generator) = self.generator.take() {
            generator.abort();
        }
        if let Some(mut load_balancer) = self.load_balancer.take() {
            load_balancer.stop(STOP_GRACE).await;
        }
        let agents = std::mem::take(&mut self.agents);
        let stops = agents.into_iter().map(|(mut agent, work_dir)| async move {
            agent.stop(STOP_GRACE).await;
            processes::sweep_instances(&work_dir);
        });
        join_all(stops).await;
        if let Some(mut server) = self.server.take() {
            server.stop(STOP_GRACE).await;
        }
    }
}

/// Awaits every future (few of them: one per agent), concurrently.
async fn join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    for handle in handles {
        let _ = handle.await;
    }
}

/// What the banner prints.
struct Ready {
    url: String,
    admin_token: String,
    shop_token: Option<String>,
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("demo directory {}", args.dir.display()))?;
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mut started = Started::default();
    let outcome = tokio::select! {
        ready = start(args, &dir, &mut started) => ready,
        _ = interrupt.recv() => Err(anyhow::anyhow!("interrupted while starting")),
        _ = terminate.recv() => Err(anyhow::anyhow!("terminated while starting")),
    };
    match outcome {
        Ok(ready) => {
            print_banner(&ready, &dir, args.frontend_port);
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                _ = watch_children(&mut started) => {}
            }
            say("stopping the demo...");
            started.stop().await;
            say("stopped");
            Ok(())
        }
        Err(error) => {
            started.stop().await;
            Err(error)
        }
    }
}

/// Starts everything; answers what to print.
async fn start(args: &DemoArgs, dir: &Path, started: &mut Started) -> anyhow::Result<Ready> {
    let exe = std::env::current_exe().context("the path of this executable")?;
    let exe_text = exe.to_str().context("the executable's path is not UTF-8")?;
    let data_dir = dir.join("server");
    let fresh = !data_dir.join(caravan_server::DATABASE_FILE).exists();

    let mut command = Command::new(&exe);
    command
        .args(["server", "--listen", &args.listen, "--data-dir"])
        .arg(&data_dir)
        .env("RUST_LOG", "info");
    let (server, url) = Managed::spawn_server(command, &dir.join("logs/server.log"))?;
    started.server = Some(server);
    let admin_token =
        super::read_admin_token(&data_dir)?.context("the server wrote no admin.token")?;
    let client = Client::new(&url, Some(admin_token.clone()))?;

    let shop_token_file = dir.join("shop.token");
    if fresh {
        println!(
            "setting up the demo fleet, schema and tenants in {}",
            dir.display()
        );
        let token = setup::platform(&client, exe_text, args.frontend_port).await?;
        write_secret(&shop_token_file, &token)?;
    }
    let mut agent_tokens = Vec::with_capacity(setup::HOSTS.len());
    for (index, host) in setup::HOSTS.iter().enumerate() {
        // Each agent runs with its own host's agent token, never the admin token.
        let token = agent_token(&client, dir, host.name).await?;
        let first = u16::try_from(index)
            .ok()
            .and_then(|index| index.checked_mul(PORTS_PER_AGENT))
            .and_then(|offset| args.agent_ports.checked_add(offset))
            .and_then(|first| Some((first, first.checked_add(PORTS_PER_AGENT - 1)?)))
            .context("--agent-ports is too high for five agents")?;
        let work_dir = dir.join("agents").join(host.name);
        let mut command = Command::new(&exe);
        command
            .args(["--server", &url, "agent", "--host-name", host.name])
            .args(["--data-center", host.data_center])
            .args(["--cpu", "2", "--memory-mib", "4096", "--disk-gib", "50"])
            .args(["--port-range", &format!("{}-{}", first.0, first.1)])
            .args(["--heartbeat-ms", HEARTBEAT_MS, "--stop-grace-ms", "2000"])
            // The instances listen on loopback: the registry (and HAProxy) reach them there.
            .args(["--advertise-ip", "127.0.0.1"])
            .args([
                "--label",
                &format!("rack={}-r{}", host.data_center, index % 2 + 1),
            ])
            .arg("--work-dir")
            .arg(&work_dir)
            .env("CARAVAN_TOKEN", &token)
            .env("RUST_LOG", "info");
        agent_tokens.push(token);
        let log = dir.join("logs").join(format!("agent-{}.log", host.name));
        let agent = Managed::spawn(&format!("agent {}", host.name), command, &log)?;
        started.agents.push((agent, work_dir));
    }
    setup::hosts_up(&client, READY_TIMEOUT).await?;
    if fresh {
        setup::service(&client).await?;
    }
    // The load balancer reads the registry with the first host's agent token.
    let lb_token = agent_tokens
        .first()
        .context("the demo has no hosts")?
        .clone();
    started.load_balancer = Some(start_load_balancer(&exe, dir, &url, &lb_token, args)?);
    if args.logs_per_second > 0 {
        let generator = Client::new(&url, Some(admin_token.clone()))?;
        started.generator = Some(tokio::spawn(loggen::run(generator, args.logs_per_second)));
    }
    setup::service_running(&client, READY_TIMEOUT).await?;
    setup::frontend_serving(args.frontend_port, READY_TIMEOUT).await?;
    Ok(Ready {
        url,
        admin_token,
        shop_token: std::fs::read_to_string(&shop_token_file)
            .ok()
            .map(|token| token.trim().to_owned()),
    })
}

/// The agent token of `host`, from `<dir>/agents/<host>.token`, created (and saved there, mode
/// 0600) on the first run.
async fn agent_token(client: &Client, dir: &Path, host: &str) -> anyhow::Result<String> {
    let path = dir.join("agents").join(format!("{host}.token"));
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    let token = setup::agent_token(client, host).await?;
    std::fs::create_dir_all(dir.join("agents"))
        .with_context(|| format!("cannot create {}", dir.join("agents").display()))?;
    write_secret(&path, &token)?;
    Ok(token)
}

/// Starts `caravan lb` with `token`: HAProxy on 127.0.0.1, the sample service on its frontend
/// port.
fn start_load_balancer(
    exe: &Path,
    dir: &Path,
    url: &str,
    token: &str,
    args: &DemoArgs,
) -> anyhow::Result<Managed> {
    let mut command = Command::new(exe);
    command
        .args(["--server", url, "lb", "--bind", "127.0.0.1"])
        .arg("--metrics-listen")
        .arg(args.lb_metrics_listen.to_string())
        .arg("--work-dir")
        .arg(dir.join("lb"))
        .env("CARAVAN_TOKEN", token)
        .env("RUST_LOG", "info");
    Managed::spawn("load balancer", command, &dir.join("logs/lb.log"))
}

/// Resolves when a child the demo depends on exits by itself (then the demo stops the rest).
async fn watch_children(started: &mut Started) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(server) = started.server.as_mut()
            && !server.running()
        {
            tracing::warn!("the server exited; see {}", server.log.display());
            return;
        }
        if let Some(load_balancer) = started.load_balancer.as_mut()
            && !load_balancer.running()
        {
            tracing::warn!(
                "the load balancer exited; see {}",
                load_balancer.log.display()
            );
            return;
        }
        for (agent, _) in &mut started.agents {
            if !agent.running() {
                tracing::warn!("{} exited; see {}", agent.name, agent.log.display());
                return;
            }
        }
    }
}

/// Prints a line, ignoring a closed standard output (the demo must still stop what it started
/// when its terminal or reader went away).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{secret}")?;
    Ok(())
}

fn print_banner(ready: &Ready, dir: &Path, frontend_port: u16) {
    let url = &ready.url;
    println!();
    println!(
        "Caravan demo is running (state and logs in {}).",
        dir.display()
    );
    println!();
    println!("  UI:          {url}/ui/");
    println!("  admin token: {}", ready.admin_token);
    println!(
        "  {}:  http://127.0.0.1:{frontend_port}/ (HAProxy, following the registry)",
        setup::SERVICE
    );
    if let Some(token) = &ready.shop_token {
        println!("  shop token:  {token}   (a tenant token: fleet and logs of `shop` only)");
    }
    println!();
    println!("Three things to try:");
    println!(
        "  1. Open the UI, log in with the admin token, and see {} hosts in 3 data centers.",
        setup::HOSTS.len()
    );
    println!(
        "  2. Services > {}: scale it to 3 groups, or drain a host, and watch the instances move,",
        setup::SERVICE
    );
    println!(
        "     while `wrk -c4 -d30s http://127.0.0.1:{frontend_port}/` loses no request through HAProxy."
    );
    println!(
        "  3. Logs: tenant `{}`, query `level:ERROR OR http.status:>=500`; drag on the chart to zoom.",
        setup::PAYMENTS
    );
    println!();
    println!(
        "The CLI works too: CARAVAN_SERVER={url} CARAVAN_TOKEN=<admin token> caravan service show {}",
        setup::SERVICE
    );
    println!("Ctrl-C stops everything.");
    println!("caravan demo ready");
}
