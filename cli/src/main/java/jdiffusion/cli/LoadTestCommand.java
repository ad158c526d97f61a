package jdiffusion.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code jdiffusion dev load-test}: N clients, each submitting a small txt2img prompt to a running server's /prompt
 * and waiting for it in /history before the next, M prompts in all. Reports throughput, latency percentiles (submit
 * and end to end), the HTTP status counts, and checks that every accepted prompt finished exactly once (one
 * execution_start and one execution_success in its /history status, no restart). Loopback servers only, bounded in
 * clients, prompts and time.
 */
@Command(name = "load-test", mixinStandardHelpOptions = true,
        description = "Load-test a local jdiffusion server's queue (loopback only).")
public final class LoadTestCommand implements Callable<Integer> {
    static final int MAX_CLIENTS = 64;
    static final int MAX_REQUESTS = 10_000;
    private static final ObjectMapper JSON = new ObjectMapper();

    @Option(names = "--url", required = true, paramLabel = "URL", description = "the server, e.g. http://127.0.0.1:8188")
    String url;

    @Option(names = "--clients", defaultValue = "4", paramLabel = "N",
            description = "concurrent clients, 1.." + MAX_CLIENTS + " (default ${DEFAULT-VALUE})")
    int clients;

    @Option(names = "--requests", defaultValue = "40", paramLabel = "M",
            description = "prompts in all, 1.." + MAX_REQUESTS + " (default ${DEFAULT-VALUE})")
    int requests;

    @Option(names = "--checkpoint", paramLabel = "NAME", description = "checkpoint name (default: the server's first)")
    String checkpoint;

    @Option(names = "--size", defaultValue = "64", paramLabel = "PX", description = "image size (default ${DEFAULT-VALUE})")
    int size;

    @Option(names = "--steps", defaultValue = "2", paramLabel = "N", description = "steps (default ${DEFAULT-VALUE})")
    int steps;

    @Option(names = "--max-seconds", defaultValue = "600", paramLabel = "S",
            description = "give up after this long (default ${DEFAULT-VALUE})")
    int maxSeconds;

    @Option(names = "--auth-token", paramLabel = "T", description = "the server's token, if it has one")
    String token;

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    @Override
    public Integer call() throws Exception {
        URI base = checkUrl(url);
        if (clients < 1 || clients > MAX_CLIENTS) {
            throw new CliException("--clients must be 1.." + MAX_CLIENTS + ", got " + clients);
        }
        if (requests < 1 || requests > MAX_REQUESTS) {
            throw new CliException("--requests must be 1.." + MAX_REQUESTS + ", got " + requests);
        }
        if (maxSeconds < 1 || maxSeconds > 3600 || size < 16 || size > 1024 || steps < 1 || steps > 50) {
            throw new CliException("--max-seconds 1..3600, --size 16..1024, --steps 1..50");
        }
        String ckpt = checkpoint != null ? checkpoint : firstCheckpoint(base);
        long deadline = System.nanoTime() + maxSeconds * 1_000_000_000L;
        AtomicInteger next = new AtomicInteger();
        Map<Integer, Integer> statuses = new ConcurrentHashMap<>();
        List<Double> submitMs = Collections.synchronizedList(new ArrayList<>());
        List<Double> endToEndMs = Collections.synchronizedList(new ArrayList<>());
        List<String> accepted = Collections.synchronizedList(new ArrayList<>());
        List<String> problems = Collections.synchronizedList(new ArrayList<>());
        long t0 = System.nanoTime();
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            String clientId = "load-test-" + c;
            threads.add(Thread.ofPlatform().name(clientId).start(() -> {
                for (int i = next.getAndIncrement(); i < requests && System.nanoTime() < deadline;
                        i = next.getAndIncrement()) {
                    one(base, ckpt, clientId, i, deadline, statuses, submitMs, endToEndMs, accepted, problems);
                }
            }));
        }
        for (Thread t : threads) {
            t.join();
        }
        double wall = (System.nanoTime() - t0) / 1e9;
        Check check = exactlyOnce(base, accepted);
        PrintStream out = System.out;
        out.printf(Locale.ROOT, "load test: %d clients, %d prompts (%dx%d, %d steps, %s) against %s%n", clients,
                requests, size, size, steps, ckpt, base);
        out.printf(Locale.ROOT, "  wall %.1f s, %d accepted, %d finished: %.2f prompts/s%n", wall, accepted.size(),
                endToEndMs.size(), endToEndMs.size() / wall);
        out.println("  HTTP statuses of /prompt: " + new TreeMap<>(statuses));
        out.println("  submit latency (ms):     " + percentiles(submitMs));
        out.println("  end-to-end latency (ms): " + percentiles(endToEndMs));
        out.printf(Locale.ROOT, "  exactly once: %d of %d accepted prompts in /history with one start and one"
                + " success; %d missing, %d run more than once, %d failed%n", check.once, accepted.size(),
                check.missing, check.repeated, check.failed);
        problems.stream().limit(5).forEach(p -> out.println("  problem: " + p));
        boolean ok = check.once == accepted.size() && accepted.size() == requests
                && statuses.keySet().stream().allMatch(s -> s == 200);
        out.println(ok ? "  result: OK" : "  result: FAILED");
        return ok ? 0 : 1;
    }

    /** http(s)://host:port whose host is a loopback address (every address it resolves to). */
    static URI checkUrl(String url) {
        URI u;
        try {
            u = URI.create(url);
        } catch (IllegalArgumentException e) {
            throw new CliException("--url is not a URL: " + url);
        }
        if (u.getScheme() == null || !(u.getScheme().equals("http") || u.getScheme().equals("https"))
                || u.getHost() == null) {
            throw new CliException("--url must be http://HOST:PORT, got " + url);
        }
        try {
            for (InetAddress a : InetAddress.getAllByName(u.getHost())) {
                if (!a.isLoopbackAddress()) {
                    throw new CliException("--url must be a loopback address (127.0.0.1, ::1, localhost): "
                            + u.getHost() + " is " + a.getHostAddress() + "; load tests never leave this machine");
                }
            }
        } catch (UnknownHostException e) {
            throw new CliException("cannot resolve " + u.getHost());
        }
        String s = u.toString();
        return URI.create(s.endsWith("/") ? s.substring(0, s.length() - 1) : s);
    }

    private void one(URI base, String ckpt, String clientId, int i, long deadline, Map<Integer, Integer> statuses,
            List<Double> submitMs, List<Double> endToEndMs, List<String> accepted, List<String> problems) {
        ObjectNode body = JSON.createObjectNode();
        body.set("prompt", prompt(ckpt, 1000L + i));
        body.put("client_id", clientId);
        long start = System.nanoTime();
        HttpResponse<String> r;
        try {
            r = http.send(request(base, "/prompt").header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body.toString())).build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (IOException | InterruptedException e) {
            statuses.merge(-1, 1, Integer::sum);
            problems.add("prompt " + i + ": " + e);
            return;
        }
        submitMs.add((System.nanoTime() - start) / 1e6);
        statuses.merge(r.statusCode(), 1, Integer::sum);
        if (r.statusCode() != 200) {
            problems.add("prompt " + i + ": HTTP " + r.statusCode() + " " + r.body());
            return;
        }
        String id;
        try {
            id = JSON.readTree(r.body()).path("prompt_id").asText();
        } catch (IOException e) {
            problems.add("prompt " + i + ": bad answer " + r.body());
            return;
        }
        accepted.add(id);
        while (System.nanoTime() < deadline) {
            try {
                HttpResponse<String> h = http.send(request(base, "/history/" + id).GET().build(),
                        HttpResponse.BodyHandlers.ofString());
                if (h.statusCode() == 200 && JSON.readTree(h.body()).has(id)) {
                    endToEndMs.add((System.nanoTime() - start) / 1e6);
                    return;
                }
                Thread.sleep(50);
            } catch (IOException e) {
                problems.add("history of " + id + ": " + e);
                return;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
        problems.add("prompt " + id + " did not finish in time");
    }

    private record Check(int once, int missing, int repeated, int failed) {
    }

    /** Every accepted prompt in /history once: one execution_start, one execution_success, no restart. */
    private Check exactlyOnce(URI base, List<String> accepted) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(request(base, "/history").GET().build(), HttpResponse.BodyHandlers.ofString());
        JsonNode history = JSON.readTree(r.body());
        int once = 0;
        int missing = 0;
        int repeated = 0;
        int failed = 0;
        for (String id : accepted) {
            JsonNode h = history.get(id);
            if (h == null) {
                missing++;
                continue;
            }
            int starts = 0;
            int successes = 0;
            boolean restarted = false;
            for (JsonNode m : h.path("status").path("messages")) {
                String type = m.path(0).asText();
                starts += type.equals("execution_start") ? 1 : 0;
                successes += type.equals("execution_success") ? 1 : 0;
                restarted |= type.equals("execution_restarted");
            }
            if (!"success".equals(h.path("status").path("status_str").asText())) {
                failed++;
            } else if (starts != 1 || successes != 1 || restarted) {
                repeated++;
            } else {
                once++;
            }
        }
        return new Check(once, missing, repeated, failed);
    }

    private HttpRequest.Builder request(URI base, String path) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofMinutes(2));
        if (token != null) {
            b.header("Authorization", "Bearer " + token);
        }
        return b;
    }

    private String firstCheckpoint(URI base) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(request(base, "/models/checkpoints").GET().build(),
                HttpResponse.BodyHandlers.ofString());
        JsonNode list = r.statusCode() == 200 ? JSON.readTree(r.body()) : null;
        if (list == null || !list.isArray() || list.isEmpty()) {
            throw new CliException("the server at " + base + " lists no checkpoint (HTTP " + r.statusCode() + ")");
        }
        return list.get(0).asText();
    }

    private ObjectNode prompt(String ckpt, long seed) {
        ObjectNode p = JSON.createObjectNode();
        node(p, "4", "CheckpointLoaderSimple").put("ckpt_name", ckpt);
        ObjectNode pos = node(p, "6", "CLIPTextEncode");
        pos.put("text", "a lighthouse on a cliff");
        pos.putArray("clip").add("4").add(1);
        ObjectNode neg = node(p, "7", "CLIPTextEncode");
        neg.put("text", "");
        neg.putArray("clip").add("4").add(1);
        ObjectNode latent = node(p, "5", "EmptyLatentImage");
        latent.put("width", size).put("height", size).put("batch_size", 1);
        ObjectNode ks = node(p, "3", "KSampler");
        ks.putArray("model").add("4").add(0);
        ks.put("seed", seed).put("steps", steps).put("cfg", 5.0).put("sampler_name", "euler")
                .put("scheduler", "normal").put("denoise", 1.0);
        ks.putArray("positive").add("6").add(0);
        ks.putArray("negative").add("7").add(0);
        ks.putArray("latent_image").add("5").add(0);
        ObjectNode dec = node(p, "8", "VAEDecode");
        dec.putArray("samples").add("3").add(0);
        dec.putArray("vae").add("4").add(2);
        ObjectNode save = node(p, "9", "SaveImage");
        save.putArray("images").add("8").add(0);
        save.put("filename_prefix", "load-test");
        return p;
    }

    private static ObjectNode node(ObjectNode p, String id, String type) {
        ObjectNode n = p.putObject(id);
        n.put("class_type", type);
        return n.putObject("inputs");
    }

    /** p50 / p90 / p99 / max of the values. */
    static String percentiles(List<Double> values) {
        List<Double> v = new ArrayList<>(values);
        if (v.isEmpty()) {
            return "(none)";
        }
        Collections.sort(v);
        return String.format(Locale.ROOT, "p50 %.0f, p90 %.0f, p99 %.0f, max %.0f (n=%d)", at(v, 0.50), at(v, 0.90),
                at(v, 0.99), v.getLast(), v.size());
    }

    private static double at(List<Double> sorted, double q) {
        int i = (int) Math.ceil(q * sorted.size()) - 1;
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, i)));
    }
}
