package smtest

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
)

// Replica states, as ReplicationStatus reports them.
const (
	replicaInProgress = "InProgress"
	replicaInSync     = "InSync"
)

// defaultReplicaKey is what ReplicationStatus names when a replica was
// added without a KmsKeyId: the AWS managed key of its region.
const defaultReplicaKey = "alias/aws/secretsmanager"

// regionPattern is the API reference's pattern for a replica region.
var regionPattern = regexp.MustCompile(`^([a-z]+-)+\d+$`)

// replica is a copy of a secret in another region. The server keeps one
// region's secrets, so a replica is only its record on the primary: AWS
// copies every version there asynchronously (PutSecretValue on the primary
// included), which the server takes as done at once.
type replica struct {
	region, kmsKeyID string
}

// replicaRegion is the ReplicaRegionType of a request.
type replicaRegion struct {
	KmsKeyId string
	Region   string
}

// replicationStatus is the ReplicationStatusType of a response.
type replicationStatus struct {
	KmsKeyId      string
	Region        string
	Status        string
	StatusMessage string `json:",omitempty"`
}

// checkReplicaRegions applies the rules of AddReplicaRegions: each region
// well formed, not the secret's own, named once, and (for a secret that
// already has replicas) not replicated yet. The messages for the last two
// are the server's own: AWS refuses both as invalid parameters without
// documenting the text.
func checkReplicaRegions(add []replicaRegion, existing []string) *apiError {
	seen := map[string]bool{}
	for i, r := range add {
		switch {
		case len(r.Region) < 1 || len(r.Region) > 128 || !regionPattern.MatchString(r.Region):
			return errValidation(fmt.Sprintf("1 validation error detected: Value '%s' at 'addReplicaRegions.%d.member.region' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", r.Region, i+1, regionPattern))
		case len(r.KmsKeyId) > maxSecretIDLen:
			return errValidation(fmt.Sprintf("1 validation error detected: Value at 'addReplicaRegions.%d.member.kmsKeyId' failed to satisfy constraint: Member must have length less than or equal to %d", i+1, maxSecretIDLen))
		case r.Region == Region:
			return errInvalidParameter("Invalid replica region.")
		case seen[r.Region]:
			return errInvalidParameter(fmt.Sprintf("Region %s is listed more than once.", r.Region))
		case slices.Contains(existing, r.Region):
			return errInvalidParameter(fmt.Sprintf("The secret is already replicated to region %s.", r.Region))
		}
		seen[r.Region] = true
	}
	return nil
}

// replicate records replicas in the regions of add, which the caller has
// checked, and returns the secret's replication status as the response that
// starts them shows it: the new replicas InProgress.
func (sec *secret) replicate(add []replicaRegion) []replicationStatus {
	var started []string
	for _, r := range add {
		key := r.KmsKeyId
		if key == "" {
			key = defaultReplicaKey
		}
		sec.replicas = append(sec.replicas, &replica{region: r.Region, kmsKeyID: key})
		started = append(started, r.Region)
	}
	return sec.replicationStatus(started)
}

// replicationStatus lists the secret's replicas, those in starting as
// InProgress and the others InSync.
func (sec *secret) replicationStatus(starting []string) []replicationStatus {
	out := []replicationStatus{}
	for _, r := range sec.replicas {
		st := replicationStatus{KmsKeyId: r.kmsKeyID, Region: r.region, Status: replicaInSync, StatusMessage: "Replication succeeded"}
		if slices.Contains(starting, r.region) {
			st.Status, st.StatusMessage = replicaInProgress, "Replication in progress"
		}
		out = append(out, st)
	}
	return out
}

func (sec *secret) replicaRegions() []string {
	var out []string
	for _, r := range sec.replicas {
		out = append(out, r.region)
	}
	return out
}

type replicateSecretToRegionsInput struct {
	SecretId                    string
	AddReplicaRegions           []replicaRegion
	ForceOverwriteReplicaSecret bool
}

type replicationOutput struct {
	ARN               string
	ReplicationStatus []replicationStatus
}

func (s *Server) replicateSecretToRegions(in *replicateSecretToRegionsInput) (any, *apiError) {
	if len(in.AddReplicaRegions) == 0 {
		return nil, errValidation("1 validation error detected: Value at 'addReplicaRegions' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.find(in.SecretId)
	if err != nil {
		return nil, err
	}
	if !sec.deletion.IsZero() {
		return nil, errMarkedDeleted()
	}
	if err := checkReplicaRegions(in.AddReplicaRegions, sec.replicaRegions()); err != nil {
		return nil, err
	}
	return replicationOutput{ARN: sec.arn, ReplicationStatus: sec.replicate(in.AddReplicaRegions)}, nil
}

type removeRegionsFromReplicationInput struct {
	SecretId             string
	RemoveReplicaRegions []string
}

// removeRegionsFromReplication deletes the named replicas at once (no
// recovery window for a replica); a region without one is ignored.
func (s *Server) removeRegionsFromReplication(in *removeRegionsFromReplicationInput) (any, *apiError) {
	if len(in.RemoveReplicaRegions) == 0 {
		return nil, errValidation("1 validation error detected: Value at 'removeReplicaRegions' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	for i, r := range in.RemoveReplicaRegions {
		if !regionPattern.MatchString(r) {
			return nil, errValidation(fmt.Sprintf("1 validation error detected: Value '%s' at 'removeReplicaRegions.%d.member' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", r, i+1, regionPattern))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.find(in.SecretId)
	if err != nil {
		return nil, err
	}
	if !sec.deletion.IsZero() {
		return nil, errMarkedDeleted()
	}
	sec.replicas = slices.DeleteFunc(sec.replicas, func(r *replica) bool { return slices.Contains(in.RemoveReplicaRegions, r.region) })
	return replicationOutput{ARN: sec.arn, ReplicationStatus: sec.replicationStatus(nil)}, nil
}

// errMarkedDeleted is the replication operations' answer for a secret
// scheduled for deletion, in the API reference's words.
func errMarkedDeleted() *apiError {
	return &apiError{http.StatusBadRequest, "InvalidRequestException", "You tried to perform the operation on a secret that's currently marked deleted."}
}
