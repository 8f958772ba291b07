//! Function networking: `/v1/subnets` (admins create and delete, every
//! caller reads) and `/v1/security-groups` (owner-scoped; an admin names
//! another owner with `?owner=` when creating or listing).

use axum::extract::State;
use axum::http::StatusCode;
use hotswap_control::{NewSubnet, SecurityGroupSpec};
use hotswap_domain::{SecurityGroup, Subnet};

use crate::dto::{
    CreateSubnetRequest, GroupOwnerQuery, Page, PageQuery, SecurityGroupPath, SecurityGroupRequest,
    SubnetPath,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, NoQuery, Owner, Path, Query};
use crate::AppState;

/// Create a subnet (admin tokens): a private block (RFC 1918 or
/// 100.64.0.0/10), /16 to /28, overlapping no other subnet.
#[utoipa::path(post, path = "/v1/subnets", tag = "networking", request_body = CreateSubnetRequest,
    responses((status = 201, body = Subnet), (status = 403, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn create_subnet(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Json(req): Json<CreateSubnetRequest>,
) -> ApiResult<(StatusCode, axum::Json<Subnet>)> {
    let new = NewSubnet {
        subnet_name: req.subnet_name,
        cidr: req.cidr,
    };
    let subnet = s.control.create_subnet(&caller, new).await?;
    Ok((StatusCode::CREATED, axum::Json(subnet)))
}

/// Every subnet, by name (any token may place functions in any subnet).
#[utoipa::path(get, path = "/v1/subnets", tag = "networking", params(PageQuery),
    responses((status = 200, body = Page<Subnet>)))]
pub(crate) async fn list_subnets(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Subnet>>> {
    Ok(axum::Json(Page::of(
        s.control.list_subnets(&caller).await?,
        q.limit,
        q.next_token.as_deref(),
    )?))
}

#[utoipa::path(get, path = "/v1/subnets/{id}", tag = "networking", params(SubnetPath),
    responses((status = 200, body = Subnet), (status = 404, body = ApiError)))]
pub(crate) async fn get_subnet(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Subnet>> {
    Ok(axum::Json(s.control.get_subnet(&caller, &id).await?))
}

/// Delete a subnet (admin tokens); 409, naming them, while a function or a
/// published version uses it.
#[utoipa::path(delete, path = "/v1/subnets/{id}", tag = "networking", params(SubnetPath),
    responses((status = 204), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn delete_subnet(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.control.delete_subnet(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn spec(req: SecurityGroupRequest) -> SecurityGroupSpec {
    SecurityGroupSpec {
        group_name: req.group_name,
        egress: req.egress,
    }
}

/// Create a security group: egress rules that functions of the same owner
/// add to the default egress by naming it in `vpcConfig.securityGroupIds`.
#[utoipa::path(post, path = "/v1/security-groups", tag = "networking", params(GroupOwnerQuery), request_body = SecurityGroupRequest,
    responses((status = 201, body = SecurityGroup), (status = 403, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn create_security_group(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Owner(owner): Owner,
    _: NoQuery,
    Json(req): Json<SecurityGroupRequest>,
) -> ApiResult<(StatusCode, axum::Json<SecurityGroup>)> {
    let group = s
        .control
        .create_security_group(&caller, owner.as_deref(), spec(req))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(group)))
}

/// Your security groups (an admin: every owner's, or `?owner=`'s), by name.
#[utoipa::path(get, path = "/v1/security-groups", tag = "networking", params(PageQuery, GroupOwnerQuery),
    responses((status = 200, body = Page<SecurityGroup>)))]
pub(crate) async fn list_security_groups(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Owner(owner): Owner,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<SecurityGroup>>> {
    let groups = s
        .control
        .list_security_groups(&caller, owner.as_deref())
        .await?;
    Ok(axum::Json(Page::of(
        groups,
        q.limit,
        q.next_token.as_deref(),
    )?))
}

#[utoipa::path(get, path = "/v1/security-groups/{id}", tag = "networking", params(SecurityGroupPath),
    responses((status = 200, body = SecurityGroup), (status = 404, body = ApiError)))]
pub(crate) async fn get_security_group(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SecurityGroup>> {
    Ok(axum::Json(
        s.control.get_security_group(&caller, &id).await?,
    ))
}

/// Replace a security group's name and rules. Functions using it get the
/// new rules from their next instance on.
#[utoipa::path(put, path = "/v1/security-groups/{id}", tag = "networking", params(SecurityGroupPath), request_body = SecurityGroupRequest,
    responses((status = 200, body = SecurityGroup), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn update_security_group(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path(id): Path<String>,
    Json(req): Json<SecurityGroupRequest>,
) -> ApiResult<axum::Json<SecurityGroup>> {
    Ok(axum::Json(
        s.control
            .update_security_group(&caller, &id, spec(req))
            .await?,
    ))
}

/// Delete a security group; 409, naming them, while a function or a
/// published version uses it.
#[utoipa::path(delete, path = "/v1/security-groups/{id}", tag = "networking", params(SecurityGroupPath),
    responses((status = 204), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn delete_security_group(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.control.delete_security_group(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
