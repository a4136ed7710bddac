//! `referral.v1.Directory`: the routing policy, service points and mobile teams.
//!
//! Reads come from the routing state the writer keeps; changes go through the writer, so they
//! take effect between two intake batches and never half-way through one.

use tonic::{Request, Response, Status};

use super::{Guard, caller, convert};
use crate::access::{Caller, Operation};
use crate::application::writer::Writer;
use crate::domain::{Error, FieldViolation};
use crate::pb;
use crate::pb::directory_server::Directory;
use crate::routing::directory::{DirectoryData, DirectoryUpdate};
use crate::routing::policy::Policy;

/// Serves the directory and the policy.
pub struct DirectoryService {
    writer: Writer,
    guard: Guard,
}

impl DirectoryService {
    /// Creates the service over the writer and its routing state.
    pub fn new(writer: Writer, guard: Guard) -> Self {
        Self { writer, guard }
    }

    /// The caller, when its role allows `operation` (a refusal is audited).
    async fn permit<T>(
        &self,
        request: &Request<T>,
        operation: Operation,
    ) -> Result<Caller, Status> {
        let caller = caller(request)?;
        self.guard.check(&caller, operation).await?;
        Ok(caller)
    }

    /// Records a change to the directory, or its refusal, in the audit trail.
    async fn audited<T>(
        &self,
        caller: &Caller,
        operation: Operation,
        result: Result<T, Error>,
    ) -> Result<Response<T>, Status> {
        self.guard
            .audited(caller, operation, None, result)
            .await
            .map(Response::new)
    }

    /// Refuses a duty status set by anyone `access` does not allow for this team.
    fn check_team_owner(&self, caller: &Caller, team_id: &str) -> Result<(), Error> {
        let province = self.team(team_id)?.province;
        caller.check_team_update(team_id, &province)
    }

    /// Refuses an occupancy set by anyone `access` does not allow for this service point.
    fn check_point_owner(&self, caller: &Caller, point_id: &str) -> Result<(), Error> {
        let province = self.service_point(point_id)?.province;
        caller.check_occupancy_update(point_id, &province)
    }

    fn service_point(&self, id: &str) -> Result<pb::ServicePoint, Error> {
        let routing = self.writer.routing().read();
        let point = routing
            .directory
            .service_point(id)
            .ok_or(Error::NotFound("service point"))?;
        Ok(point.into())
    }

    fn team(&self, id: &str) -> Result<pb::MobileTeam, Error> {
        let routing = self.writer.routing().read();
        let team = routing.directory.team(id).ok_or(Error::NotFound("team"))?;
        Ok(team.into())
    }
}

#[tonic::async_trait]
impl Directory for DirectoryService {
    #[tracing::instrument(skip_all, fields(rpc = "GetPolicy"))]
    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        self.permit(&request, Operation::ReadDirectory).await?;
        let policy = self.writer.routing().read().policy.clone();
        let policy_toml = toml::to_string(&policy.document()).map_err(Error::internal)?;
        Ok(Response::new(pb::GetPolicyResponse {
            version: policy.version(),
            policy_toml,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ReplacePolicy"))]
    async fn replace_policy(
        &self,
        request: Request<pb::ReplacePolicyRequest>,
    ) -> Result<Response<pb::ReplacePolicyResponse>, Status> {
        let caller = self.permit(&request, Operation::ManageDirectory).await?;
        let request = request.into_inner();
        let result = async {
            let policy = Policy::parse(&request.policy_toml, 0).map_err(|refused| {
                Error::InvalidArgument(
                    refused
                        .0
                        .into_iter()
                        .map(|problem| FieldViolation::new("policy_toml", problem))
                        .collect(),
                )
            })?;
            let problems = crate::routing::policy::unknown_points(
                policy.rules(),
                &self.writer.routing().read().directory,
            );
            if !problems.is_empty() {
                return Err(Error::InvalidArgument(
                    problems
                        .into_iter()
                        .map(|problem| FieldViolation::new("policy_toml", problem))
                        .collect(),
                ));
            }
            let expected = (request.expected_version != 0).then_some(request.expected_version);
            let version = self
                .writer
                .replace_policy(policy.document(), expected)
                .await?;
            Ok(pb::ReplacePolicyResponse { version })
        }
        .await;
        self.audited(&caller, Operation::ManageDirectory, result)
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListServicePoints"))]
    async fn list_service_points(
        &self,
        request: Request<pb::ListServicePointsRequest>,
    ) -> Result<Response<pb::ListServicePointsResponse>, Status> {
        self.permit(&request, Operation::ReadDirectory).await?;
        let request = request.into_inner();
        let kind = convert::optional_kind(request.kind)?;
        let (province, county) = convert::directory_filter(request.province, request.county)?;
        let routing = self.writer.routing().read();
        let mut service_points: Vec<pb::ServicePoint> = routing
            .directory
            .data()
            .service_points
            .iter()
            .filter(|p| p.province == province)
            .filter(|p| {
                county
                    .as_ref()
                    .is_none_or(|c| p.county.eq_ignore_ascii_case(c))
            })
            .filter(|p| kind.is_none_or(|k| p.kind == k))
            .map(Into::into)
            .collect();
        service_points.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Response::new(pb::ListServicePointsResponse {
            service_points,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetServicePoint"))]
    async fn get_service_point(
        &self,
        request: Request<pb::GetServicePointRequest>,
    ) -> Result<Response<pb::GetServicePointResponse>, Status> {
        self.permit(&request, Operation::ReadDirectory).await?;
        let id = convert::required_id("id", request.into_inner().id)?;
        Ok(Response::new(pb::GetServicePointResponse {
            service_point: Some(self.service_point(&id)?),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpdateOccupancy"))]
    async fn update_occupancy(
        &self,
        request: Request<pb::UpdateOccupancyRequest>,
    ) -> Result<Response<pb::UpdateOccupancyResponse>, Status> {
        let caller = self.permit(&request, Operation::UpdateOccupancy).await?;
        let result = async {
            let (update, key) = convert::occupancy_update(request.into_inner())?;
            let key = key.map(|key| (caller.subject().to_owned(), key));
            let DirectoryUpdate::Occupancy {
                service_point_id,
                occupancy,
            } = &update
            else {
                return Err(Error::internal("occupancy update changed kind"));
            };
            let service_point_id = service_point_id.clone();
            self.check_point_owner(&caller, &service_point_id)?;
            let capacity = self.service_point(&service_point_id)?.capacity;
            if capacity.is_some_and(|c| *occupancy > c) {
                return Err(Error::invalid(
                    "occupancy",
                    "is more than the service point's capacity",
                ));
            }
            self.writer
                .update_directory(update.clone(), key, self.guard.now())
                .await?;
            Ok(pb::UpdateOccupancyResponse {
                service_point: Some(self.service_point(&service_point_id)?),
            })
        }
        .await;
        self.audited(&caller, Operation::UpdateOccupancy, result)
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListTeams"))]
    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        self.permit(&request, Operation::ReadDirectory).await?;
        let request = request.into_inner();
        let (province, county) = convert::directory_filter(request.province, request.county)?;
        let routing = self.writer.routing().read();
        let mut teams: Vec<pb::MobileTeam> = routing
            .directory
            .data()
            .teams
            .iter()
            .filter(|t| t.province == province)
            .filter(|t| {
                county
                    .as_ref()
                    .is_none_or(|c| t.base_county.eq_ignore_ascii_case(c))
            })
            .map(Into::into)
            .collect();
        teams.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Response::new(pb::ListTeamsResponse { teams }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetTeam"))]
    async fn get_team(
        &self,
        request: Request<pb::GetTeamRequest>,
    ) -> Result<Response<pb::GetTeamResponse>, Status> {
        self.permit(&request, Operation::ReadDirectory).await?;
        let id = convert::required_id("id", request.into_inner().id)?;
        Ok(Response::new(pb::GetTeamResponse {
            team: Some(self.team(&id)?),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListCounties"))]
    async fn list_counties(
        &self,
        request: Request<pb::ListCountiesRequest>,
    ) -> Result<Response<pb::ListCountiesResponse>, Status> {
        self.permit(&request, Operation::ReadDirectory).await?;
        let province = request.into_inner().province;
        // Every province's, in code order, when none is named.
        let provinces: Vec<String> = if province.trim().is_empty() {
            crate::domain::province::all()
                .iter()
                .map(|p| p.code.to_owned())
                .collect()
        } else {
            vec![convert::directory_filter(province, String::new())?.0]
        };
        let routing = self.writer.routing().read();
        let counties = provinces
            .iter()
            .flat_map(|province| routing.directory.counties_of(province))
            .filter_map(|key| routing.directory.county_by_key(key))
            .map(Into::into)
            .collect();
        Ok(Response::new(pb::ListCountiesResponse { counties }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpsertCounty"))]
    async fn upsert_county(
        &self,
        request: Request<pb::UpsertCountyRequest>,
    ) -> Result<Response<pb::UpsertCountyResponse>, Status> {
        let caller = self.permit(&request, Operation::ManageDirectory).await?;
        let result = async {
            let county = convert::county(request.into_inner().county)?;
            let entries = DirectoryData {
                counties: vec![county.clone()],
                ..Default::default()
            };
            self.writer.upsert_directory(entries, "county").await?;
            Ok(pb::UpsertCountyResponse {
                county: Some((&county).into()),
            })
        }
        .await;
        self.audited(&caller, Operation::ManageDirectory, result)
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpsertServicePoint"))]
    async fn upsert_service_point(
        &self,
        request: Request<pb::UpsertServicePointRequest>,
    ) -> Result<Response<pb::UpsertServicePointResponse>, Status> {
        let caller = self.permit(&request, Operation::ManageDirectory).await?;
        let result = async {
            let point = convert::service_point(request.into_inner().service_point)?;
            let id = point.id.clone();
            let entries = DirectoryData {
                service_points: vec![point],
                ..Default::default()
            };
            self.writer
                .upsert_directory(entries, "service_point")
                .await?;
            Ok(pb::UpsertServicePointResponse {
                service_point: Some(self.service_point(&id)?),
            })
        }
        .await;
        self.audited(&caller, Operation::ManageDirectory, result)
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpsertTeam"))]
    async fn upsert_team(
        &self,
        request: Request<pb::UpsertTeamRequest>,
    ) -> Result<Response<pb::UpsertTeamResponse>, Status> {
        let caller = self.permit(&request, Operation::ManageDirectory).await?;
        let result = async {
            let team = convert::mobile_team(request.into_inner().team)?;
            let id = team.id.clone();
            let entries = DirectoryData {
                teams: vec![team],
                ..Default::default()
            };
            self.writer.upsert_directory(entries, "team").await?;
            Ok(pb::UpsertTeamResponse {
                team: Some(self.team(&id)?),
            })
        }
        .await;
        self.audited(&caller, Operation::ManageDirectory, result)
            .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "UpdateTeamStatus"))]
    async fn update_team_status(
        &self,
        request: Request<pb::UpdateTeamStatusRequest>,
    ) -> Result<Response<pb::UpdateTeamStatusResponse>, Status> {
        let caller = self.permit(&request, Operation::UpdateTeamStatus).await?;
        let result = async {
            let (update, key) = convert::team_update(request.into_inner())?;
            let key = key.map(|key| (caller.subject().to_owned(), key));
            let DirectoryUpdate::Team { team_id, .. } = &update else {
                return Err(Error::internal("team update changed kind"));
            };
            let team_id = team_id.clone();
            self.check_team_owner(&caller, &team_id)?;
            self.writer
                .update_directory(update, key, self.guard.now())
                .await?;
            Ok(pb::UpdateTeamStatusResponse {
                team: Some(self.team(&team_id)?),
            })
        }
        .await;
        self.audited(&caller, Operation::UpdateTeamStatus, result)
            .await
    }
}
