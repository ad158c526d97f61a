package jdiffusion.server;

import java.nio.file.Path;

/**
 * How a server runs: where it listens, its folders, its token and its limits.
 *
 * @param listen            address to bind (127.0.0.1 unless told); beyond loopback a token is required
 * @param port              0 for an ephemeral port
 * @param authToken         required on every request when not null
 * @param extraModelPaths   an extra_model_paths file, or null
 * @param maxQueue          pending + running prompts accepted before 429
 * @param maxBodyBytes      largest request body
 * @param maxPixels         largest width x height of a latent or an uploaded image
 * @param maxSteps          most sampler steps in one node
 * @param maxBatch          largest batch
 * @param modelBudgetBytes  memory for loaded models (LRU)
 * @param apiSize           the long side of an image made by the Stability endpoint (it has no width / height)
 * @param apiSteps          steps used by the Stability endpoint (it has no steps field)
 */
public record ServerConfig(String listen, int port, Path baseDir, String authToken, Path extraModelPaths,
        int maxQueue, long maxBodyBytes, long maxPixels, int maxSteps, int maxBatch, long modelBudgetBytes,
        int apiSize, int apiSteps) {

    public static ServerConfig defaults(Path baseDir) {
        return new ServerConfig("127.0.0.1", 8188, baseDir, null, null, 100, 32L << 20, 4096L * 4096, 500, 16,
                8L << 30, 1024, 20);
    }

    public ServerConfig withPort(int p) {
        return new ServerConfig(listen, p, baseDir, authToken, extraModelPaths, maxQueue, maxBodyBytes, maxPixels,
                maxSteps, maxBatch, modelBudgetBytes, apiSize, apiSteps);
    }

    public ServerConfig withListen(String l) {
        return new ServerConfig(l, port, baseDir, authToken, extraModelPaths, maxQueue, maxBodyBytes, maxPixels,
                maxSteps, maxBatch, modelBudgetBytes, apiSize, apiSteps);
    }

    public ServerConfig withAuthToken(String t) {
        return new ServerConfig(listen, port, baseDir, t, extraModelPaths, maxQueue, maxBodyBytes, maxPixels,
                maxSteps, maxBatch, modelBudgetBytes, apiSize, apiSteps);
    }

    public ServerConfig withExtraModelPaths(Path p) {
        return new ServerConfig(listen, port, baseDir, authToken, p, maxQueue, maxBodyBytes, maxPixels, maxSteps,
                maxBatch, modelBudgetBytes, apiSize, apiSteps);
    }

    public ServerConfig withLimits(int queue, long bodyBytes, long pixels, int steps, int batch) {
        return new ServerConfig(listen, port, baseDir, authToken, extraModelPaths, queue, bodyBytes, pixels, steps,
                batch, modelBudgetBytes, apiSize, apiSteps);
    }

    public ServerConfig withApiDefaults(int size, int steps) {
        return new ServerConfig(listen, port, baseDir, authToken, extraModelPaths, maxQueue, maxBodyBytes, maxPixels,
                maxSteps, maxBatch, modelBudgetBytes, size, steps);
    }
}
