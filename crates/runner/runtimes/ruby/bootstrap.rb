# frozen_string_literal: true

# HotSwap built-in Ruby runtime: an AWS Lambda Runtime API client.
#
# Launched as `ruby --disable-gems bootstrap.rb` with AWS_LAMBDA_RUNTIME_API,
# _HANDLER and LAMBDA_TASK_ROOT set. Standard library only.
#
# Handler: `file.method` (`lambda_function.lambda_handler`: a top-level
# method in $LAMBDA_TASK_ROOT/lambda_function.rb) or
# `file.Module::Class.method` (a class method). It is called like AWS calls
# it, `handler(event:, context:)`; a method taking positional parameters
# gets `(event, context)` or `(event)` instead.
#
# Cold start matters: RubyGems costs more than the whole rest of a start, so
# the interpreter runs with --disable-gems and this file loads RubyGems only
# when the function ships gems (vendor/bundle, a layer's ruby/gems, a
# Gemfile). It requires only `socket.so` (not socket.rb) and `json`, and
# speaks HTTP/1.1 over one keep-alive connection itself.

require "socket.so"
require "json"

module HotSwapRuntime
  API_PREFIX = "/2018-06-01/runtime"
  SELF = File.expand_path(__FILE__)

  # Raised while loading the handler; reported to /runtime/init/error.
  class InitError < StandardError
    attr_reader :error_type, :trace

    def initialize(error_type, message, trace = [])
      super(message)
      @error_type = error_type
      @trace = trace
    end
  end

  class HTTPError < StandardError
    attr_accessor :got_bytes
  end

  # One keep-alive HTTP/1.1 connection to the Runtime API.
  class Connection
    def initialize(hostport)
      hostport = hostport.sub(%r{\Ahttps?://}, "").chomp("/")
      host, sep, port = hostport.rpartition(":")
      if sep.empty? || host.empty? || port !~ /\A\d+\z/
        raise HTTPError, "AWS_LAMBDA_RUNTIME_API must be host:port, got #{hostport.inspect}"
      end

      @hostport = hostport
      @host = host.delete_prefix("[").delete_suffix("]")
      @port = Integer(port, 10)
      @sock = nil
    end

    def close
      @sock&.close
    rescue IOError, SystemCallError
      nil
    ensure
      @sock = nil
    end

    # Returns [status, headers (lower-case names), body (binary)]. A reused
    # connection the server closed while idle is retried once on a fresh one
    # if not a single response byte came back.
    def request(method, path, body = nil, headers = {})
      head = +"#{method} #{path} HTTP/1.1\r\nHost: #{@hostport}\r\nUser-Agent: hotswap-ruby\r\n"
      headers.each { |k, v| head << "#{k}: #{v}\r\n" }
      head << "Content-Length: #{body.bytesize}\r\n" if body
      head << "\r\n"
      data = body ? head.b << body.b : head.b
      2.times do |attempt|
        reused = !@sock.nil?
        unless reused
          @sock = TCPSocket.new(@host, @port)
          @sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
          @sock.binmode
        end
        begin
          begin
            @sock.write(data)
          rescue SystemCallError, IOError
            # The server may have answered (e.g. 413) and closed early.
            resp = try_read_response(method)
            raise if resp.nil?

            return resp
          end
          return read_response(method)
        rescue SystemCallError, IOError, HTTPError => e
          got = e.respond_to?(:got_bytes) && e.got_bytes
          close
          raise if !reused || got || attempt == 1
        end
      end
    end

    private

    def try_read_response(method)
      read_response(method)
    rescue SystemCallError, IOError, HTTPError
      close
      nil
    end

    def line
      l = @sock.gets("\r\n", 65_536)
      raise closed_error(true) if l.nil?
      raise closed_error(true, "header line too long") unless l.end_with?("\r\n")

      l.chomp("\r\n")
    end

    def closed_error(got, message = "connection closed by the Runtime API")
      e = HTTPError.new(message)
      e.got_bytes = got
      e
    end

    def read_response(method)
      status_line = @sock.gets("\r\n", 65_536)
      raise closed_error(false) if status_line.nil?

      version, status = status_line.split(" ", 3)
      raise closed_error(true, "bad status line #{status_line.inspect}") unless version&.start_with?("HTTP/") && status =~ /\A\d{3}\z/

      status = status.to_i
      headers = {}
      while (l = line) != ""
        name, sep, value = l.partition(":")
        next if sep.empty?

        name = name.strip.downcase
        value = value.strip
        headers[name] = headers.key?(name) ? "#{headers[name]}, #{value}" : value
      end
      return read_response(method) if status >= 100 && status < 200

      conn = headers.fetch("connection", "").downcase
      keep = !conn.include?("close") && (version != "HTTP/1.0" || conn.include?("keep-alive"))
      body =
        if method == "HEAD" || status == 204 || status == 304
          +""
        elsif headers.fetch("transfer-encoding", "").downcase.include?("chunked")
          read_chunked
        elsif headers.key?("content-length")
          read_exact(Integer(headers["content-length"].split(",").first.strip, 10))
        else
          keep = false
          @sock.read || +""
        end
      close unless keep
      [status, headers, body]
    rescue ArgumentError => e
      raise closed_error(true, "malformed response: #{e.message}")
    end

    def read_exact(n)
      data = n.zero? ? +"" : @sock.read(n)
      raise closed_error(true) if data.nil? || data.bytesize < n

      data
    end

    def read_chunked
      out = +"".b
      loop do
        size = Integer(line.split(";", 2).first.strip, 16)
        if size.zero?
          nil until line.empty? # trailers
          return out
        end
        out << read_exact(size)
        read_exact(2)
      end
    end
  end

  # The `context` argument, with the names AWS's Ruby runtime gives it.
  class LambdaContext
    attr_reader :aws_request_id, :invoked_function_arn, :log_group_name,
                :log_stream_name, :function_name, :memory_limit_in_mb,
                :function_version, :identity, :client_context, :deadline_ms

    def initialize(request_id, headers, static)
      @aws_request_id = request_id
      @invoked_function_arn = headers["lambda-runtime-invoked-function-arn"]
      @deadline_ms = headers["lambda-runtime-deadline-ms"].to_i
      @identity = HotSwapRuntime.json_header(headers["lambda-runtime-cognito-identity"])
      @client_context = HotSwapRuntime.json_header(headers["lambda-runtime-client-context"])
      @function_name, @function_version, @memory_limit_in_mb, @log_group_name, @log_stream_name = static
    end

    def get_remaining_time_in_millis # AWS's name
      [@deadline_ms - Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond), 0].max
    end

    def inspect
      "#<LambdaContext aws_request_id=#{@aws_request_id.inspect} function_name=#{@function_name.inspect} " \
        "function_version=#{@function_version.inspect} memory_limit_in_mb=#{@memory_limit_in_mb.inspect}>"
    end
  end

  module_function

  def json_header(raw)
    return nil if raw.nil? || raw.empty?

    value = JSON.parse(raw)
    value.is_a?(Hash) ? value : nil
  rescue JSON::ParserError
    nil
  end

  # The event: the body parsed as JSON, or the raw body as a string.
  def parse_event(body)
    text = body.dup.force_encoding(Encoding::UTF_8)
    text = text.scrub unless text.valid_encoding?
    begin
      JSON.parse(text.delete_prefix("\uFEFF"))
    rescue JSON::ParserError
      text
    end
  end

  # The frames that belong to the function, not to this file.
  def user_trace(ex)
    (ex.backtrace || []).reject do |f|
      f.start_with?(SELF, "<internal:") || f.include?("/rubygems/core_ext/kernel_require.rb")
    end
  end

  def header_value(text)
    cleaned = text.to_s.each_char.select { |c| c >= " " && c <= "~" }.join
    cleaned.empty? ? "Unhandled" : cleaned[0, 200]
  end

  def log_error(payload)
    msg = +"[ERROR] #{payload['errorType']}: #{payload['errorMessage']}"
    trace = payload["stackTrace"]
    msg << "\n" << trace.map { |f| "\tfrom #{f}" }.join("\n") unless trace.nil? || trace.empty?
    $stderr.write(msg, "\n")
    $stderr.flush
  rescue StandardError
    nil
  end

  def escape_path(segment)
    segment.b.gsub(/[^A-Za-z0-9\-._~]/n) { |c| format("%%%02X", c.ord) }
  end

  # Ruby's ABI directory name (`3.1.0`), as gem directories are named.
  def ruby_abi
    major, minor = RUBY_VERSION.split(".")
    "#{major}.#{minor}.0"
  end

  def directory?(path)
    File.directory?(path)
  rescue SystemCallError
    false
  end

  # Search paths as AWS's Ruby runtime sets them: the task root, then
  # /opt/ruby/lib (layers) in RUBYLIB and $LOAD_PATH; gems in
  # $TASK/vendor/bundle/ruby/X.Y.0 and /opt/ruby/gems/X.Y.0 through GEM_PATH
  # (with RubyGems loaded only when there are some).
  def setup_paths(task_root)
    script_dir = File.dirname(SELF)
    $LOAD_PATH.delete(script_dir)
    libs = [task_root, "/opt/ruby/lib"].select { |d| directory?(d) }
    rubylib = (ENV.fetch("RUBYLIB", "").split(":") + libs).reject(&:empty?).uniq
    ENV["RUBYLIB"] = rubylib.join(":") unless rubylib.empty?
    libs.reverse_each { |d| $LOAD_PATH.unshift(d) unless $LOAD_PATH.include?(d) }

    abi = ruby_abi
    gem_dirs = ["#{task_root}/vendor/bundle/ruby/#{abi}", "/opt/ruby/gems/#{abi}"].select { |d| directory?(d) }
    gemfile = File.file?(File.join(task_root, "Gemfile"))
    return if gem_dirs.empty? && !gemfile

    existing = ENV.fetch("GEM_PATH", "").split(":").reject(&:empty?)
    # The trailing ":" keeps RubyGems' default directories after ours.
    ENV["GEM_PATH"] = "#{(gem_dirs + existing).uniq.join(':')}:"
    ENV["BUNDLE_GEMFILE"] ||= File.join(task_root, "Gemfile") if gemfile
    require "rubygems"
  end

  def load_handler(spec, task_root)
    parts = spec.strip.split(".", -1)
    unless [2, 3].include?(parts.size) && parts.none?(&:empty?)
      raise InitError.new("Runtime.MalformedHandlerName",
                          "Bad handler '#{spec}': expected file.method or file.Module::Class.method")
    end

    file, method_name = parts.first, parts.last
    const_name = parts.size == 3 ? parts[1] : nil
    path = File.expand_path(file, task_root)
    begin
      require path
    rescue LoadError => e
      raise InitError.new("Runtime.ImportModuleError", "Error loading '#{file}': #{e.message}", user_trace(e))
    rescue SyntaxError => e
      raise InitError.new("Runtime.UserCodeSyntaxError", "Syntax error in '#{file}': #{e.message}", user_trace(e))
    rescue SystemExit, SignalException
      raise
    rescue Exception => e # whatever the code raised
      raise InitError.new(e.class.name || e.class.inspect, e.message, user_trace(e))
    end

    receiver =
      if const_name
        begin
          Object.const_get(const_name)
        rescue NameError
          raise InitError.new("Runtime.HandlerNotFound", "Handler '#{spec}': constant #{const_name} is not defined in '#{file}'")
        end
      else
        TOPLEVEL_BINDING.receiver
      end
    handler =
      begin
        receiver.method(method_name)
      rescue NameError
        nil
      end
    if handler.nil? || (const_name.nil? && handler.owner != Object)
      where = const_name ? "#{const_name}.#{method_name}" : "#{method_name} in '#{file}'"
      raise InitError.new("Runtime.HandlerNotFound", "Handler '#{spec}': no method #{where}")
    end
    caller_for(handler)
  end

  # AWS calls `handler(event:, context:)`. Keyword parameters get the
  # keywords they name; positional ones get `(event, context)` or `(event)`.
  def caller_for(handler)
    params = handler.parameters
    kinds = params.map(&:first)
    accepted = kinds.include?(:keyrest) ? %i[event context] : params.select { |k, _| %i[key keyreq].include?(k) }.map(&:last) & %i[event context]
    positional = kinds.count { |k| %i[req opt].include?(k) }
    if !accepted.empty?
      ->(event, context) { handler.call(**{ event: event, context: context }.slice(*accepted)) }
    elsif positional >= 2 || kinds.include?(:rest)
      ->(event, context) { handler.call(event, context) }
    elsif positional == 1
      ->(event, _context) { handler.call(event) }
    else
      ->(_event, _context) { handler.call }
    end
  end

  def post(conn, path, payload, error_type)
    data = JSON.generate(payload)
    status, _, body = conn.request("POST", path, data,
                                   "Content-Type" => "application/json",
                                   "Lambda-Runtime-Function-Error-Type" => header_value(error_type))
    $stderr.write("bootstrap: POST #{path} returned #{status}: #{body[0, 500]}\n") unless status.between?(200, 299)
    status
  end

  def report_error(conn, base, payload)
    log_error(payload)
    post(conn, "#{base}/error", payload, payload["errorType"])
  rescue StandardError => e
    $stderr.write("bootstrap: POST error failed: #{e.message}\n")
  end

  def error_payload(ex, request_id)
    {
      "errorMessage" => ex.message.to_s,
      "errorType" => ex.class.name || ex.class.inspect,
      "stackTrace" => user_trace(ex),
      "requestId" => request_id
    }
  end

  def main
    $stdout.sync = true
    $stderr.sync = true
    api = ENV["AWS_LAMBDA_RUNTIME_API"]
    if api.nil? || api.empty?
      $stderr.write("bootstrap: AWS_LAMBDA_RUNTIME_API is not set\n")
      return 2
    end
    conn = Connection.new(api)
    spec = ENV["_HANDLER"] || ARGV[0] || ""
    task_root = ENV.fetch("LAMBDA_TASK_ROOT", "/var/task")
    static = [
      ENV["AWS_LAMBDA_FUNCTION_NAME"], ENV["AWS_LAMBDA_FUNCTION_VERSION"],
      ENV.fetch("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
      ENV["AWS_LAMBDA_LOG_GROUP_NAME"], ENV["AWS_LAMBDA_LOG_STREAM_NAME"]
    ].freeze

    begin
      setup_paths(task_root)
      handler = load_handler(spec, task_root)
    rescue InitError => e
      payload = { "errorMessage" => e.message, "errorType" => e.error_type, "stackTrace" => e.trace }
      log_error(payload)
      begin
        post(conn, "#{API_PREFIX}/init/error", payload, e.error_type)
      rescue StandardError => pe
        $stderr.write("bootstrap: could not report init error: #{pe.message}\n")
      end
      return 1
    end

    next_path = "#{API_PREFIX}/invocation/next"
    loop do
      begin
        status, headers, body = conn.request("GET", next_path)
      rescue StandardError => e
        $stderr.write("bootstrap: GET next failed: #{e.message}\n")
        return 1
      end
      if status != 200
        $stderr.write("bootstrap: GET next returned #{status}: #{body[0, 500]}\n")
        return 1
      end
      request_id = headers.fetch("lambda-runtime-aws-request-id", "")
      trace_id = headers["lambda-runtime-trace-id"]
      if trace_id
        ENV["_X_AMZN_TRACE_ID"] = trace_id
      else
        ENV.delete("_X_AMZN_TRACE_ID")
      end
      context = LambdaContext.new(request_id, headers, static)
      base = "#{API_PREFIX}/invocation/#{escape_path(request_id)}"
      begin
        result = handler.call(parse_event(body), context)
      rescue SystemExit, SignalException
        raise
      rescue Exception => e # the invocation's error
        report_error(conn, base, error_payload(e, request_id))
        next
      end
      begin
        data = JSON.generate(result)
      rescue StandardError => e
        report_error(conn, base, { "errorMessage" => "Unable to marshal response: #{e.message}",
                                   "errorType" => "Runtime.MarshalError", "stackTrace" => [],
                                   "requestId" => request_id })
        next
      end
      begin
        status, _, rbody = conn.request("POST", "#{base}/response", data, "Content-Type" => "application/json")
      rescue StandardError => e
        $stderr.write("bootstrap: POST response failed: #{e.message}\n")
        next
      end
      if status == 413
        report_error(conn, base, {
                       "errorMessage" => "Response payload size (#{data.bytesize} bytes) exceeded maximum allowed payload size.",
                       "errorType" => "Function.ResponseSizeTooLarge", "stackTrace" => [], "requestId" => request_id
                     })
      elsif !status.between?(200, 299)
        $stderr.write("bootstrap: POST response returned #{status}: #{rbody[0, 500]}\n")
      end
    end
  end
end

exit(HotSwapRuntime.main) if $PROGRAM_NAME == __FILE__
