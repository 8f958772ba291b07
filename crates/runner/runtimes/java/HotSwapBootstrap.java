// HotSwap's Java runtime interface client. Speaks the Lambda Runtime API at
// $AWS_LAMBDA_RUNTIME_API and calls the handler named by $_HANDLER:
// `package.Class::method` (method defaults to `handleRequest`). The method
// takes the event as a JSON String, optionally followed by a
// Map<String, Object> context, and returns a String that is sent as the
// response (it should be JSON; anything else is sent as a JSON string).
// Only the JDK is needed.

import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.HashMap;
import java.util.Map;

public final class HotSwapBootstrap {
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static String base;

    public static void main(String[] args) throws Exception {
        String api = System.getenv("AWS_LAMBDA_RUNTIME_API");
        base = "http://" + api.replaceFirst("^https?://", "") + "/2018-06-01/runtime/";
        String handler = System.getenv().getOrDefault("_HANDLER", "");
        Object target;
        Method method;
        try {
            String[] parts = handler.split("::", 2);
            String methodName = parts.length == 2 ? parts[1] : "handleRequest";
            Class<?> cls = Class.forName(parts[0]);
            method = find(cls, methodName);
            if (method == null) {
                initError("Runtime.HandlerNotFound", "No public method " + methodName + "(String[, Map]) on " + parts[0], null);
                return;
            }
            target = Modifier.isStatic(method.getModifiers()) ? null : cls.getDeclaredConstructor().newInstance();
        } catch (ClassNotFoundException e) {
            initError("Runtime.ImportModuleError", "Class not found: " + e.getMessage(), e);
            return;
        } catch (Throwable e) {
            initError("Runtime.UserCodeError", String.valueOf(e), e);
            return;
        }
        while (true) {
            HttpResponse<String> next = HTTP.send(HttpRequest.newBuilder(URI.create(base + "invocation/next")).GET().build(),
                    HttpResponse.BodyHandlers.ofString());
            if (next.statusCode() != 200) {
                System.err.println("runtime API answered " + next.statusCode() + " to next; exiting");
                System.exit(1);
            }
            String id = next.headers().firstValue("Lambda-Runtime-Aws-Request-Id").orElse("");
            Map<String, Object> ctx = new HashMap<>();
            ctx.put("awsRequestId", id);
            ctx.put("deadlineMs", Long.parseLong(next.headers().firstValue("Lambda-Runtime-Deadline-Ms").orElse("0")));
            ctx.put("invokedFunctionArn", next.headers().firstValue("Lambda-Runtime-Invoked-Function-Arn").orElse(""));
            ctx.put("functionName", System.getenv("AWS_LAMBDA_FUNCTION_NAME"));
            ctx.put("functionVersion", System.getenv("AWS_LAMBDA_FUNCTION_VERSION"));
            ctx.put("memoryLimitInMB", System.getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"));
            try {
                Object out = method.getParameterCount() == 2 ? method.invoke(target, next.body(), ctx) : method.invoke(target, next.body());
                post("invocation/" + id + "/response", asJson(out), null);
            } catch (InvocationTargetException e) {
                Throwable cause = e.getCause() == null ? e : e.getCause();
                post("invocation/" + id + "/error", errorJson(cause.getClass().getSimpleName(), String.valueOf(cause.getMessage()), cause),
                        cause.getClass().getSimpleName());
            } catch (Throwable e) {
                post("invocation/" + id + "/error", errorJson(e.getClass().getSimpleName(), String.valueOf(e.getMessage()), e),
                        e.getClass().getSimpleName());
            }
        }
    }

    private static Method find(Class<?> cls, String name) {
        for (Method m : cls.getMethods()) {
            Class<?>[] p = m.getParameterTypes();
            if (!m.getName().equals(name)) continue;
            if (p.length == 1 && p[0] == String.class) return m;
            if (p.length == 2 && p[0] == String.class && Map.class.isAssignableFrom(p[1])) return m;
        }
        return null;
    }

    private static String asJson(Object out) {
        if (out == null) return "null";
        String s = out.toString().trim();
        if (!(out instanceof String)) return quote(s);
        if (s.isEmpty()) return quote(s);
        char c = s.charAt(0);
        boolean looksJson = c == '{' || c == '[' || c == '"' || c == '-' || Character.isDigit(c)
                || s.equals("true") || s.equals("false") || s.equals("null");
        return looksJson ? s : quote(s);
    }

    private static void initError(String type, String message, Throwable e) throws Exception {
        post("init/error", errorJson(type, message, e), type);
        System.exit(1);
    }

    private static String errorJson(String type, String message, Throwable e) {
        StringBuilder trace = new StringBuilder("[");
        if (e != null) {
            StringWriter sw = new StringWriter();
            e.printStackTrace(new PrintWriter(sw));
            String[] lines = sw.toString().split("\n");
            for (int i = 0; i < lines.length; i++) {
                if (i > 0) trace.append(',');
                trace.append(quote(lines[i].trim()));
            }
        }
        trace.append(']');
        return "{\"errorMessage\":" + quote(message) + ",\"errorType\":" + quote(type) + ",\"stackTrace\":" + trace + "}";
    }

    private static void post(String path, String body, String errorType) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body));
        if (errorType != null) b.header("Lambda-Runtime-Function-Error-Type", errorType);
        HTTP.send(b.build(), HttpResponse.BodyHandlers.discarding());
    }

    static String quote(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (ch < 0x20) out.append(String.format("\\u%04x", (int) ch));
                    else out.append(ch);
            }
        }
        return out.append('"').toString();
    }
}
