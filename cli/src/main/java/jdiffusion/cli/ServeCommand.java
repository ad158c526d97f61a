package jdiffusion.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import jdiffusion.server.JDiffusionServer;
import jdiffusion.server.ServeOptions;
import jdiffusion.server.ServerConfig;
import jdiffusion.server.ServerMain;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code jdiffusion serve}: ComfyUI's HTTP/WebSocket API, the A1111 and Stability endpoints and the web page, with a
 * queue that survives restarts (kept in the base dir). Binds loopback unless told; beyond loopback a token is
 * required.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Serve the ComfyUI-compatible API and the web page (open http://127.0.0.1:PORT/).")
public final class ServeCommand implements Callable<Integer> {
    @Option(names = "--port", defaultValue = "8188", description = "TCP port (default ${DEFAULT-VALUE}; 0 = any free)")
    int port;

    @Option(names = "--listen", defaultValue = "127.0.0.1",
            description = "address to bind (default ${DEFAULT-VALUE}); beyond loopback --auth-token is required")
    String listen;

    @Option(names = "--base-dir", defaultValue = ".",
            description = "folder with models/, input/, output/ and the queue database (default: current folder)")
    Path baseDir;

    @Option(names = "--auth-token", description = "token every request must carry (Authorization: Bearer T);"
            + " default: the JDIFFUSION_AUTH_TOKEN environment variable")
    String authToken;

    @Option(names = "--extra-model-paths", description = "extra_model_paths.yaml naming more model folders"
            + " (for example an existing ComfyUI install's)")
    Path extraModelPaths;

    @picocli.CommandLine.Mixin
    PrecisionOption precisionOption = new PrecisionOption();

    @Option(names = {"-t", "--threads"}, paramLabel = "N", description = "compute threads (default: all cores;"
            + " at most 4 x the cores)")
    Integer threads;
    @Option(names = "--front-end-root", description = "serve another front end's static build (a folder with an"
            + " index.html, e.g. ComfyUI's own front end) in place of jdiffusion's page")
    Path frontEndRoot;

    @Option(names = "--preview-method", defaultValue = "none", description = "latent previews over the websocket:"
            + " none, auto, latent2rgb or taesd (default ${DEFAULT-VALUE}; a prompt's extra_data.preview_method may"
            + " ask for them, as jdiffusion's page does)")
    String previewMethod;

    @Override
    public Integer call() throws InterruptedException {
        jdiffusion.tensor.Precision precision = precisionOption.apply();
        if (threads != null) {
            String problem = jdiffusion.tensor.Parallel.threadsProblem(threads);
            if (problem != null) {
                throw new CliException("--" + problem);
            }
            jdiffusion.tensor.Parallel.setThreads(threads);
        }
        String token = authToken != null ? authToken : System.getenv("JDIFFUSION_AUTH_TOKEN");
        if (extraModelPaths != null && !Files.isRegularFile(extraModelPaths)) {
            throw new CliException("extra model paths file " + extraModelPaths + " not found");
        }
        if (port < 0 || port > 65535) {
            throw new CliException("--port must be 0..65535, not " + port);
        }
        ServerConfig config = ServerConfig.defaults(baseDir).withPort(port).withListen(listen).withAuthToken(token)
                .withExtraModelPaths(extraModelPaths);
        ServeOptions serve;
        try {
            serve = new ServeOptions(frontEndRoot, previewMethod);
        } catch (IllegalArgumentException e) {
            throw new CliException(e.getMessage());
        }
        JDiffusionServer server;
        try {
            server = JDiffusionServer.start(config, serve);
        } catch (RuntimeException e) {
            throw new CliException(e.getMessage() == null ? e.toString() : e.getMessage(), 1);
        }
        ServerMain.announce(config, server);
        if (precision != jdiffusion.tensor.Precision.FP32) {
            System.out.println("precision: " + jdiffusion.tensor.Precision.describe(precision));
        }
        Runtime.getRuntime().addShutdownHook(new Thread(server::close));
        new CountDownLatch(1).await();
        return 0;
    }
}
